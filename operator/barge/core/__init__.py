"""Pure scheduling core: resource arithmetic and the scheduling rules, stdlib only."""
