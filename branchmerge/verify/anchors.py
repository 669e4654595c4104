"""The words that anchor an answer statement, in English and the languages models answer in.

Facts only (compiled once): how "final answer" and "answer" are written, the copulas that link
an anchor or a named quantity to its value ("is", "=", "est", "是"), and the negations that reject
an option letter ("not", "n't", "non", "不是"). The answer words follow the per-language answer
literals lighteval's multilingual extractive match uses; the rest are ordinary grammar.
"""

from __future__ import annotations

import re

# "final answer" phrases: an explicit closing commitment (may override an earlier box)
FINAL_ANSWER = (
    r"final\s+answer",  # en
    r"r[ée]ponse\s+finale", r"r[ée]sultat\s+final",  # fr
    r"endg[üu]ltige\s+antwort", r"endergebnis",  # de
    r"respuesta\s+final", r"resposta\s+final", r"risposta\s+finale",  # es, pt, it
    r"окончательный\s+ответ", r"итоговый\s+ответ", r"остаточна\s+відповідь",  # ru, uk
    r"最终答案", r"最終答案", r"最终的答案", r"最終的な答え", r"最終解答", r"최종\s*답(?:변)?",  # zh, ja, ko
    r"الإجابة\s+النهائية", r"الجواب\s+النهائي",  # ar
    r"अंतिम\s+उत्तर", r"চূড়ান্ত\s+উত্তর",  # hi, bn
    r"son\s+cevap", r"đáp\s+án\s+cuối\s+cùng", r"jawaban\s+akhir",  # tr, vi, id
)

# "answer" words (lighteval's per-language answer literals, plus common variants)
ANSWER = (
    r"answers?", r"r[ée]ponse", r"antwort", r"respuesta", r"resposta", r"risposta", r"antwoord",
    r"ответ", r"відповідь", r"odpowied[źz]", r"odpov[ěe]ď", r"svar(?:et)?", r"vastaus", r"válasz",
    r"răspuns(?:ul)?", r"απάντηση", r"cevap", r"yan[ıi]t", r"jawab(?:an|annya)?", r"đáp\s+án",
    r"câu\s+trả\s+lời", r"答案", r"答(?=\s*[:：])", r"答え", r"解答", r"回答", r"정답", r"답(?=\s*[:：은는])",
    r"الإجابة", r"الجواب", r"إجابة", r"جواب", r"پاسخ", r"उत्तर", r"উত্তর", r"คำตอบ", r"jibu",
)

# what links an anchor or a named quantity to its value
COPULA = (
    r"=", r"is", r"are", r"equals?", r"was", r"will\s+be", r"est", r"sont", r"ist", r"sind", r"es", r"son",
    r"é", r"è", r"являет?ся", r"是", r"为", r"為", r"は", r"은", r"는", r"là", r"adalah", r"ialah",
    r"है", r"हैं", r"هو", r"هي", r"≈", r"\\approx",
)
APPROXIMATE = (r"≈", r"\\approx")
# words that make the number after them a rounded restatement ("or about 16.7%")
APPROXIMATION_RE = re.compile(
    r"(?:≈|\\approx|~|\b(?:about|approximately|approx\.?|roughly|around|nearly|almost|circa|environ|etwa|aproximadamente|约|大约|約))\s*\$?\s*$",
    re.IGNORECASE)

# words that reject the option letter after them ("not A", "can't be A or B", "非 A")
NEGATION = (
    r"not", r"never", r"neither", r"nor", r"rather\s+than", r"instead\s+of", r"except", r"excluding", r"rule(?:s|d)?\s+out",
    r"eliminat(?:e|es|ed|ing)", r"exclud(?:e|es|ed)",
    r"ne\s+(?:\w+\s+)?pas", r"non", r"pas", r"nicht", r"kein(?:e|en)?", r"no(?:\s+es)?", r"não", r"не",
    r"不是", r"不", r"非", r"而不是", r"ではない", r"아니", r"ليس", r"ليست", r"ولا", r"नहीं", r"değil",
    r"bukan", r"không\s+phải",
)

_FLAGS = re.IGNORECASE


def _alternatives(words: tuple[str, ...]) -> str:
    return "(?:" + "|".join(words) + ")"


# a letter boundary that works for scripts without spaces: not after/before a Latin letter or digit
# (enforced only where the word itself begins or ends with a Latin letter or digit: "B不是 A",
# "答案是C" have no spaces, and a Chinese copula right before a letter is still a copula)
_WORD_START = r"(?:(?![A-Za-z0-9_])|(?<![A-Za-z0-9_]))"
_WORD_END = r"(?:(?<![A-Za-z0-9_])|(?![A-Za-z0-9_]))"

# adjectives some languages put after the answer word: "la réponse correcte est", "الإجابة الصحيحة هي"
POST_ADJECTIVE = (
    r"correct[ea]?", r"correct[oa]", r"corret[oa]", r"corrett[oa]", r"juste", r"exacte?", r"richtige",
    r"правильный", r"верный", r"الصحيحة", r"الصحيح", r"doğru", r"đúng", r"yang\s+benar", r"benar",
)

FINAL_ANSWER_RE = re.compile(_WORD_START + _alternatives(FINAL_ANSWER) + _WORD_END, _FLAGS)
ANSWER_RE = re.compile(_WORD_START + _alternatives(ANSWER) + _WORD_END, _FLAGS)
# what links an anchor to its value: "final answer is:", "answer: ", "réponse est", "答案是",
# "answer to the question is"; an anchor without one ("Answer $9$") must be right before its value
ANCHOR_LINK_RE = re.compile(
    r"[\s*]*(?:" + "|".join(POST_ADJECTIVE) + r")?" + _WORD_END + r"[\s*]*"
    r"(?:\([^()\n]{0,30}\)\s*)?(?:(?:to|for|of)\s+(?:the|this)\s+(?:question|problem)\s+)?"
    r"(?:[:：]|-|—|" + _alternatives(COPULA) + _WORD_END + r"(?:\s*[:：])?)[\s*]*",
    _FLAGS,
)
ANCHOR_SPACE_RE = re.compile(r"[\s*]*")
# followed from a named quantity to its value ("$n$ is 34"); not an approximation ("≈ 0.167"),
# which is a rounded restatement of the exact answer before it
COPULA_GAP_RE = re.compile(
    r"\s*(?:" + _alternatives(tuple(c for c in COPULA if c not in APPROXIMATE)) + r")" + _WORD_END + r"\s*:?\s*", _FLAGS)
# a verdict after a letter that rejects it ("A is wrong", "B isn't", "C est faux", "D 不对")
REJECTED_AFTER_RE = re.compile(
    r"\s*(?:\)|\*\*|[\"'”’])?\s*(?:(?:is|are|was|seems|looks)\s+(?:also\s+|clearly\s+|definitely\s+)?"
    r"(?:wrong|incorrect|false|invalid|impossible|not\b|ruled\s+out|eliminated|out\b)"
    r"|(?:isn't|is\s+not|can't|cannot|won't)\b"
    r"|(?:est|es|é|ist)\s+(?:faux|fausse|incorrecte?|falsa|falso|errad[oa]|incorret[oa]|falsch)"
    r"|不对|不正确|错误|是错的|错)",
    _FLAGS,
)
# a letter that joins a rejection just made: "A is wrong and so is B", "A is out, as is B"
REJECTED_CHAIN_RE = re.compile(
    r"(?:wrong|incorrect|false|invalid|impossible|ruled\s+out|eliminated|out)\W{0,3}\s*(?:and\s+)?"
    r"(?:so|as|neither)\s+(?:is|are|does)\s+(?:option\s+|choice\s+)?[\"'(*$]*$",
    re.IGNORECASE)
# "n't" ends a word ("can't", "isn't"), so it takes no word start
NEGATION_RE = re.compile(r"(?:n't|" + _WORD_START + _alternatives(NEGATION) + r")" + _WORD_END, _FLAGS)
