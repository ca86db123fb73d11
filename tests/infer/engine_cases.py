"""The conversations and texts on which the other engines (vLLM, llama.cpp) are compared with zhllama's."""

CHATS = [
    [{"role": "user", "content": "你好，请介绍一下北京。"}],
    [{"role": "system", "content": "你是一个乐于助人的助手。"}, {"role": "user", "content": "写一首关于春天的诗"}],
    [{"role": "user", "content": "1+1=?"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "再加3呢"}],
]
TEXTS = ["中国的首都是", "The quick brown fox", "def main():\n    return"]
