"""The conversations and texts on which the other engines (vLLM, llama.cpp) are compared with zhllama's."""

CHATS = [
    [{"role": "user", "content": "你好，请介绍一下北京。"}],
    [{"role": "system", "content": "你是一个乐于助人的助手。"}, {"role": "user", "content": "写一首关于春天的诗"}],
    [{"role": "user", "content": "1+1=?"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "再加3呢"}],
]
TEXTS = ["中国的首都是", "The quick brown fox", "def main():\n    return"]


def vllm_engine_pair(model_dir):
    """Yield (zhllama's engine, the vLLM engine) on the same folder, both float32; shuts vLLM down after.

    For a module-scoped fixture: ``yield from vllm_engine_pair(model_dir)``."""
    from zhllama.infer.backend import BackendConfig
    from zhllama.infer.config import EngineConfig

    cfg = EngineConfig(model=str(model_dir), dtype="float32")
    theirs = BackendConfig(kind="vllm", enforce_eager=True).load(cfg)
    yield cfg.load(), theirs
    theirs.llm.engine_core.shutdown()  # now, not at exit when pytest has closed the streams vLLM logs to
