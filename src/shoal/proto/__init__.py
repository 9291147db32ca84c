"""The wire protocol, sans-IO: frames and typed messages, the handshake state machine, the auth proofs.

Bytes in, events out. Nothing here touches a socket, a clock or a file (see net/ for the shell).
"""
