"""The simulator service: one interactive environment of a task in its own process, behind a small
msgpack-over-ZeroMQ control protocol (the gateway's framing; see docs/sim_service.md).

The service talks to the environment only through the manager-based API (scene data, action, command and
observation managers), so an Isaac Sim Kit extension can serve the same protocol from inside Kit.
"""
