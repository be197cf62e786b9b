"""The ZeroMQ policy gateway: serves an exported policy to any client, outside the simulator process."""
