"""Subject tables of CMMLU and C-Eval: file key -> Chinese name and category.

The file names of both benchmarks are English subject keys; the reference prompt names the subject
in Chinese (``以下是关于{科目}的单项选择题...``), and accuracy is reported per category.

* CMMLU (haonan-li/CMMLU): 67 subjects.  A subject belongs to one of STEM, Humanities, Social
  Science or Other, and some also to "China specific" (CMMLU reports that group separately, so
  those subjects count in two categories).
* C-Eval (SJTU-LIT/ceval ``subject_mapping.json``): 52 subjects, each in exactly one of STEM,
  Social Science, Humanities, Other.
"""

from __future__ import annotations

from .mc_benchmark import McBenchmark

STEM, HUM, SOC, OTHER, CN = "STEM", "Humanities", "Social Science", "Other", "China specific"
CMMLU_CATEGORIES = (STEM, HUM, SOC, OTHER, CN)
CEVAL_CATEGORIES = (STEM, SOC, HUM, OTHER)

# key: (Chinese name, categories)
CMMLU_SUBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "agronomy": ("农学", (OTHER,)),
    "anatomy": ("解剖学", (STEM,)),
    "ancient_chinese": ("古汉语", (SOC, CN)),
    "arts": ("艺术学", (HUM,)),
    "astronomy": ("天文学", (STEM,)),
    "business_ethics": ("商业伦理", (SOC,)),
    "chinese_civil_service_exam": ("中国公务员考试", (SOC, CN)),
    "chinese_driving_rule": ("中国驾驶规则", (OTHER, CN)),
    "chinese_food_culture": ("中国饮食文化", (SOC, CN)),
    "chinese_foreign_policy": ("中国外交政策", (SOC, CN)),
    "chinese_history": ("中国历史", (HUM, CN)),
    "chinese_literature": ("中国文学", (HUM, CN)),
    "chinese_teacher_qualification": ("中国教师资格", (SOC, CN)),
    "clinical_knowledge": ("临床知识", (OTHER,)),
    "college_actuarial_science": ("大学精算学", (STEM,)),
    "college_education": ("大学教育学", (SOC,)),
    "college_engineering_hydrology": ("大学工程水文学", (STEM,)),
    "college_law": ("大学法律", (HUM,)),
    "college_mathematics": ("大学数学", (STEM,)),
    "college_medical_statistics": ("大学医学统计", (STEM,)),
    "college_medicine": ("大学医学", (OTHER,)),
    "computer_science": ("计算机科学", (STEM,)),
    "computer_security": ("计算机安全", (OTHER,)),
    "conceptual_physics": ("概念物理学", (STEM,)),
    "construction_project_management": ("建设工程管理", (OTHER, CN)),
    "economics": ("经济学", (SOC,)),
    "education": ("教育学", (SOC,)),
    "electrical_engineering": ("电气工程", (STEM,)),
    "elementary_chinese": ("小学语文", (SOC, CN)),
    "elementary_commonsense": ("小学常识", (OTHER, CN)),
    "elementary_information_and_technology": ("小学信息技术", (OTHER,)),
    "elementary_mathematics": ("初等数学", (STEM,)),
    "ethnology": ("民族学", (SOC, CN)),
    "food_science": ("食品科学", (OTHER,)),
    "genetics": ("遗传学", (STEM,)),
    "global_facts": ("全球事实", (HUM,)),
    "high_school_biology": ("高中生物", (STEM,)),
    "high_school_chemistry": ("高中化学", (STEM,)),
    "high_school_geography": ("高中地理", (SOC,)),
    "high_school_mathematics": ("高中数学", (STEM,)),
    "high_school_physics": ("高中物理学", (STEM,)),
    "high_school_politics": ("高中政治", (SOC, CN)),
    "human_sexuality": ("人类性行为", (OTHER,)),
    "international_law": ("国际法学", (HUM,)),
    "journalism": ("新闻学", (SOC,)),
    "jurisprudence": ("法理学", (HUM,)),
    "legal_and_moral_basis": ("法律与道德基础", (OTHER,)),
    "logical": ("逻辑学", (HUM,)),
    "machine_learning": ("机器学习", (STEM,)),
    "management": ("管理学", (SOC,)),
    "marketing": ("市场营销", (SOC,)),
    "marxist_theory": ("马克思主义理论", (HUM,)),
    "modern_chinese": ("现代汉语", (SOC, CN)),
    "nutrition": ("营养学", (OTHER,)),
    "philosophy": ("哲学", (HUM,)),
    "professional_accounting": ("专业会计", (SOC,)),
    "professional_law": ("专业法学", (HUM,)),
    "professional_medicine": ("专业医学", (OTHER,)),
    "professional_psychology": ("专业心理学", (SOC,)),
    "public_relations": ("公共关系", (SOC,)),
    "security_study": ("安全研究", (SOC,)),
    "sociology": ("社会学", (SOC,)),
    "sports_science": ("体育学", (OTHER,)),
    "traditional_chinese_medicine": ("中医中药", (OTHER, CN)),
    "virology": ("病毒学", (STEM,)),
    "world_history": ("世界历史", (HUM,)),
    "world_religions": ("世界宗教", (HUM,)),
}

# key: (Chinese name, category)
CEVAL_SUBJECTS: dict[str, tuple[str, str]] = {
    "computer_network": ("计算机网络", STEM),
    "operating_system": ("操作系统", STEM),
    "computer_architecture": ("计算机组成", STEM),
    "college_programming": ("大学编程", STEM),
    "college_physics": ("大学物理", STEM),
    "college_chemistry": ("大学化学", STEM),
    "advanced_mathematics": ("高等数学", STEM),
    "probability_and_statistics": ("概率统计", STEM),
    "discrete_mathematics": ("离散数学", STEM),
    "electrical_engineer": ("注册电气工程师", STEM),
    "metrology_engineer": ("注册计量师", STEM),
    "high_school_mathematics": ("高中数学", STEM),
    "high_school_physics": ("高中物理", STEM),
    "high_school_chemistry": ("高中化学", STEM),
    "high_school_biology": ("高中生物", STEM),
    "middle_school_mathematics": ("初中数学", STEM),
    "middle_school_biology": ("初中生物", STEM),
    "middle_school_physics": ("初中物理", STEM),
    "middle_school_chemistry": ("初中化学", STEM),
    "veterinary_medicine": ("兽医学", STEM),
    "college_economics": ("大学经济学", SOC),
    "business_administration": ("工商管理", SOC),
    "marxism": ("马克思主义基本原理", SOC),
    "mao_zedong_thought": ("毛泽东思想和中国特色社会主义理论体系概论", SOC),
    "education_science": ("教育学", SOC),
    "teacher_qualification": ("教师资格", SOC),
    "high_school_politics": ("高中政治", SOC),
    "high_school_geography": ("高中地理", SOC),
    "middle_school_politics": ("初中政治", SOC),
    "middle_school_geography": ("初中地理", SOC),
    "modern_chinese_history": ("近代史纲要", HUM),
    "ideological_and_moral_cultivation": ("思想道德修养与法律基础", HUM),
    "logic": ("逻辑学", HUM),
    "law": ("法学", HUM),
    "chinese_language_and_literature": ("中国语言文学", HUM),
    "art_studies": ("艺术学", HUM),
    "professional_tour_guide": ("导游资格", HUM),
    "legal_professional": ("法律职业资格", HUM),
    "high_school_chinese": ("高中语文", HUM),
    "high_school_history": ("高中历史", HUM),
    "middle_school_history": ("初中历史", HUM),
    "civil_servant": ("公务员", OTHER),
    "sports_science": ("体育学", OTHER),
    "plant_protection": ("植物保护", OTHER),
    "basic_medicine": ("基础医学", OTHER),
    "clinical_medicine": ("临床医学", OTHER),
    "urban_and_rural_planner": ("注册城乡规划师", OTHER),
    "accountant": ("注册会计师", OTHER),
    "fire_engineer": ("注册消防工程师", OTHER),
    "environmental_impact_assessment_engineer": ("环境影响评价工程师", OTHER),
    "tax_accountant": ("税务师", OTHER),
    "physician": ("医师资格", OTHER),
}


CMMLU = McBenchmark(
    "cmmlu", title="CMMLU", splits=("test", "dev"), layout="DIR/dev/*.csv and DIR/test/*.csv (CMMLU layout)",
    columns={"question": "Question", "A": "A", "B": "B", "C": "C", "D": "D", "answer": "Answer", "id": ""},
    subjects=CMMLU_SUBJECTS, categories=CMMLU_CATEGORIES)
CEVAL = McBenchmark(
    "ceval", title="C-Eval", splits=("val", "test", "dev"),
    layout="DIR/dev/*_dev.csv, DIR/val/*_val.csv and DIR/test/*_test.csv (C-Eval layout)",
    columns={"question": "question", "A": "A", "B": "B", "C": "C", "D": "D", "answer": "answer", "id": "id"},
    subjects={key: (name, (category,)) for key, (name, category) in CEVAL_SUBJECTS.items()},
    categories=CEVAL_CATEGORIES, extra_columns=("explanation",), split_in_file_name=True, unanswered_splits=("test",),
    writes_submission=True)
