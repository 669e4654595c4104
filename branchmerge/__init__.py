"""branchmerge: Branch-Merge distillation (curate, train, merge, evaluate, report)."""

__version__ = "0.1.0"
