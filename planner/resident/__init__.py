"""Resident workers: a `planner` command answered by a process that already has JAX, the CLI and
its compiled kernels loaded (`identity`: which worker may answer; `client`: the hand-over;
`server`: the worker; `protocol`: the messages between them)."""
