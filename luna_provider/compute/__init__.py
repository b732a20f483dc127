"""Pure numeric routines (similarity, clustering); no I/O and nothing else of this package."""
