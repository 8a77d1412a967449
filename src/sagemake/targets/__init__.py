"""One module per make target: each has a Summary line (what `make help` shows) and main(argv)."""
