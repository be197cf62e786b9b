"""ROS 2 without a ROS install: rollouts and real-arm runs exported as MCAP files of ROS 2 messages.

The project's own logs are npz arrays only this code reads; an MCAP file with standard message types opens in
Foxglove and in ROS 2 tools as it is. ``python -m roarm_lab.ros2 export SRC OUT.mcap`` (``mcap_export.py``).
A live ROS 2 node is not here: it needs a machine with ROS 2 (``docs/ros2.md`` says where it would hook in).
"""
