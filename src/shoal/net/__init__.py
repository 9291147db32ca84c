"""Network shells and this node's TLS identity."""
