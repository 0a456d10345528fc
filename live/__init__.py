"""The live node stack: real Docker jobs, on-chain deals, and the twin's own mechanisms and agents."""
