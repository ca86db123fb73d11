"""Model stage: random initialisation, loading (with LoRA and checks), embedding resize."""
