"""Visual prompts: PE-Core vision tower and masked-video loading."""
