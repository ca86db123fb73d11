"""What the ``memorized_model_dir`` fixture's model has learnt by heart (see conftest.py)."""

QUESTION = "你是谁"
REPLY = "龙猫喜欢吃饺子和麒麟蛋糕。鳄鱼🐊也喜欢！"
RAW_PROMPT = "北京"
RAW_CONTINUATION = "欢迎你，鳄鱼和龙猫。"
