"""The real RoArm-M3: firmware protocol, serial/HTTP driver, firmware emulator and the policy bridge."""
