"""Source files that exports copy (never imported by lmhub itself: they import transformers)."""
