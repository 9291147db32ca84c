"""Everything that touches the local disk: config sources, scanning, hashing (watching and applying come later)."""
