"""Learning-rate schedules: pure functions of the step count, jit-safe."""
