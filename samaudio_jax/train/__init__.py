"""Training: flow-matching objective, train state, sharded step, loop."""
