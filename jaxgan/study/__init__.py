"""The mode-collapse study: its cells and runner (:mod:`.runner`) and figures (:mod:`.figures`,
which needs the ``study`` extra, matplotlib)."""
