"""Audio codecs behind one interface: DACVAE (the release's) and an analytic frame codec."""
