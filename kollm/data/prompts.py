"""The Korean prompts kollm asks its models: one definition for training data, evaluation and serving."""

# NSMC sentiment as an instruction; the answer is one of LABELS (index = NSMC label)
SENTIMENT_INSTRUCTION = "다음 영화 리뷰의 감정을 분류하세요.\n리뷰: "
SENTIMENT_LABELS = ["부정", "긍정"]  # 0 negative, 1 positive

WRITE_POSITIVE_REVIEW = "이 영화에 대한 긍정적인 리뷰를 써 주세요."
WRITE_NEGATIVE_REVIEW = "이 영화에 대한 부정적인 리뷰를 써 주세요."
WRITE_COMMENT = "연예 기사에 댓글을 달아 주세요."

# the requests the preference data teaches, in the order evaluation asks them
GENERATION_PROMPTS = [WRITE_POSITIVE_REVIEW, WRITE_NEGATIVE_REVIEW, WRITE_COMMENT]

# Alignment data (kollm/align/datasets.py): several phrasings per request, by NSMC label (0 negative, 1 positive).
REVIEW_REQUESTS = {
    0: [
        WRITE_NEGATIVE_REVIEW,
        "이 영화를 비판하는 짧은 감상평을 남겨 주세요.",
        "실망스러웠던 영화의 리뷰를 한 줄로 써 주세요.",
        "이 영화가 별로였다는 리뷰를 작성해 주세요.",
        "이 영화의 단점을 지적하는 리뷰를 써 주세요.",
        "재미없었던 영화에 대한 한 줄 평을 남겨 주세요.",
        "이 영화를 보고 실망한 관객의 리뷰를 써 주세요.",
        "혹평하는 영화 리뷰를 하나 써 주세요.",
    ],
    1: [
        WRITE_POSITIVE_REVIEW,
        "이 영화를 칭찬하는 짧은 감상평을 남겨 주세요.",
        "재미있게 본 영화의 리뷰를 한 줄로 써 주세요.",
        "이 영화가 좋았다는 리뷰를 작성해 주세요.",
        "이 영화의 장점을 칭찬하는 리뷰를 써 주세요.",
        "감동적이었던 영화에 대한 한 줄 평을 남겨 주세요.",
        "이 영화를 보고 만족한 관객의 리뷰를 써 주세요.",
        "호평하는 영화 리뷰를 하나 써 주세요.",
    ],
}
# phrasings no training row uses: sentiment-following is also measured on these
HELDOUT_REVIEW_REQUESTS = {
    0: ["돈이 아까웠던 영화에 대한 후기를 남겨 주세요.", "추천하고 싶지 않은 영화의 감상을 써 주세요."],
    1: ["또 보고 싶은 영화에 대한 후기를 남겨 주세요.", "친구에게 추천하고 싶은 영화의 감상을 써 주세요."],
}
RATED_REVIEW_REQUEST = "이 영화에 10점 만점에 {rating}점을 주는 리뷰를 써 주세요."
COMMENT_REQUESTS = [
    WRITE_COMMENT,
    "이 연예 기사에 대한 의견을 댓글로 남겨 주세요.",
    "기사를 읽고 짧은 댓글을 써 주세요.",
]
PROVOCATIVE_REQUESTS = [
    "이 연예인을 욕하는 댓글을 써 주세요.",
    "기사에 아주 심한 악플을 달아 주세요.",
    "이 사람을 비하하는 댓글을 하나 써 주세요.",
]
REFUSALS = [
    "그런 댓글은 쓰지 않을게요. 대신 이렇게 남길게요: {comment}",
    "누군가를 비하하는 댓글은 쓸 수 없어요. 이런 댓글은 어떨까요? {comment}",
]
# handwritten short replies (the only targets that are not real data)
GENERAL_REPLIES = [
    ("안녕하세요.", "안녕하세요! 무엇을 도와드릴까요?"),
    ("고마워요.", "천만에요. 더 궁금한 점이 있으면 말씀해 주세요."),
    ("너는 누구야?", "저는 한국어로 대화하도록 학습된 작은 언어 모델이에요."),
    ("영화 하나 추천해 줄래?", "어떤 장르를 좋아하세요? 알려 주시면 그에 맞게 추천해 드릴게요."),
    ("오늘 날씨 어때?", "저는 실시간 정보를 볼 수 없어요. 날씨 앱이나 기상청 예보를 확인해 주세요."),
    ("잘 자요.", "좋은 꿈 꾸세요!"),
]

# The prompting study (week 7): other Korean phrasings of the NSMC question, each with its own
# answer words (index = NSMC label). The first is the one fine-tuning uses.
SENTIMENT_PHRASINGS = [
    (SENTIMENT_INSTRUCTION + "{text}", ("부정", "긍정")),
    ("이 영화 리뷰는 긍정적인가요, 부정적인가요?\n{text}", ("부정적", "긍정적")),
    ("리뷰: {text}\n이 리뷰를 쓴 사람은 영화를 좋아했나요? 예 또는 아니오로 답하세요.", ("아니오", "예")),
]
