"""The Korean prompts kollm asks its models: one definition for training data, evaluation and serving."""

# NSMC sentiment as an instruction; the answer is one of LABELS (index = NSMC label)
SENTIMENT_INSTRUCTION = "다음 영화 리뷰의 감정을 분류하세요.\n리뷰: "
SENTIMENT_LABELS = ["부정", "긍정"]  # 0 negative, 1 positive

WRITE_POSITIVE_REVIEW = "이 영화에 대한 긍정적인 리뷰를 써 주세요."
WRITE_NEGATIVE_REVIEW = "이 영화에 대한 부정적인 리뷰를 써 주세요."
WRITE_COMMENT = "연예 기사에 댓글을 달아 주세요."

# the requests the preference data teaches, in the order evaluation asks them
GENERATION_PROMPTS = [WRITE_POSITIVE_REVIEW, WRITE_NEGATIVE_REVIEW, WRITE_COMMENT]

# The prompting study (week 7): other Korean phrasings of the NSMC question, each with its own
# answer words (index = NSMC label). The first is the one fine-tuning uses.
SENTIMENT_PHRASINGS = [
    (SENTIMENT_INSTRUCTION + "{text}", ("부정", "긍정")),
    ("이 영화 리뷰는 긍정적인가요, 부정적인가요?\n{text}", ("부정적", "긍정적")),
    ("리뷰: {text}\n이 리뷰를 쓴 사람은 영화를 좋아했나요? 예 또는 아니오로 답하세요.", ("아니오", "예")),
]
