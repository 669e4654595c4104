"""evaluate stage: benchmark registry, the R1 sampling protocol, pass@k and token statistics."""
