"""What a host gives a trial's process: its GPUs, cores and memory, found and capped."""
