"""Serving a model: an OpenAI-compatible HTTP API with dynamic batching (`zhllama serve`) and a Gradio
chat page (`zhllama webui`)."""
