"""VLM-R1's REC and OVD prompts, and chat messages in the form TRL and processors take.

A prompt template has a name and a version; both go into the scorer key
(issue 5), because a difficulty label measured under one wording does not
hold under another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# Question texts as VLM-R1's released REC / OVD data phrase them (the OVD line as its maintainers posted it in
# VLM-R1 issue #246; the tech report's wording differs in 11 places). The phrase list is a Python list's repr.
REC_QUESTION = "Please provide the bounding box coordinate of the region this sentence describes: {expression}."
OVD_QUESTION = (
    "Please carefully check the image and detect the following objects: [{categories}]. "
    "Output the bbox coordinates of detected objects in JSON format in <answer></answer>. "
    "The bbox coordinate format should be: \n```json\n"
    '[{{"bbox_2d": [x1, y1, x2, y2], "label": "object name"}}]\n```\n. '
    'If no targets are detected in the image, simply respond with "None".'
)

# VLM-R1's reasoning instruction around the question (Qwen module templates).
_REC_TEMPLATE = (
    "{question} First output the thinking process in <think> </think> tags and then output "
    "the final answer in <answer> </answer> tags. Output the final answer in JSON format."
)
_OVD_TEMPLATE = (
    "First thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>\n{question}"
)


# What str.strip() removes: the characters Python counts as whitespace (a columnar strip must use the same set;
# none lies above U+3000, which a test checks over all of Unicode).
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    rec: str
    ovd: str

    def question(self, task: str, problem: str) -> str:
        """The full user text for a sample's ``problem`` (expression or phrase list)."""
        if task == "rec":
            return self.rec.format(question=REC_QUESTION.format(expression=problem.strip().rstrip(".")))
        if task == "ovd":
            return self.ovd.format(question=OVD_QUESTION.format(categories=problem))
        raise ValueError(f"unknown task {task!r}; expected 'rec' or 'ovd'")

    def around(self, task: str) -> tuple[str, str]:
        """The text before and after the problem in ``question``'s output, so a columnar writer can build every
        prompt by concatenation (the REC problem is first stripped of ``WHITESPACE`` and then of trailing dots)."""
        mark = "\x00problem\x00"
        if task == "rec":
            text = self.rec.format(question=REC_QUESTION.format(expression=mark))
        elif task == "ovd":
            text = self.ovd.format(question=OVD_QUESTION.format(categories=mark))
        else:
            raise ValueError(f"unknown task {task!r}; expected 'rec' or 'ovd'")
        before, after = text.split(mark)
        return before, after

    def key(self) -> str:
        return f"{self.name}@{self.version}"


DEFAULT_TEMPLATE = "vlmr1"  # the one place the default template is named: configs take it from here

TEMPLATES: dict[str, PromptTemplate] = {
    # version 2: the OVD question of VLM-R1's released data (version 1 had the tech report's wording)
    "vlmr1": PromptTemplate("vlmr1", 2, _REC_TEMPLATE, _OVD_TEMPLATE),
    # No reasoning instruction: for evaluating base models the way their reports do.
    "plain": PromptTemplate("plain", 1, "{question}", "{question}"),
}


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; known: {sorted(TEMPLATES)}") from None


def ovd_phrases(categories: Iterable[str]) -> str:
    """The phrase list as the OVD prompt shows it, a Python list's repr inside the brackets:
    ``'cat', "rider's helmet"``."""
    return ", ".join(repr(c) for c in categories)


def build_messages(task: str, problem: str, template: str = DEFAULT_TEMPLATE, n_images: int = 1) -> list[dict]:
    """One user turn: image placeholder(s) then the question, as TRL's conversational prompts expect."""
    text = get_template(template).question(task, problem)
    return [
        {"role": "user", "content": [*({"type": "image"} for _ in range(n_images)), {"type": "text", "text": text}]}
    ]
