"""Shape scenes for the learnable testbed: a 112 px image in four 56 px cells, each cell's background a fixed grey
(where a shape is can be read from its own pixels), two to four shapes of distinct colours in distinct cells.

"The red circle" names one shape; its box is where that shape is drawn. Shapes sit at one fixed place in their
cell, so a tiny model can learn the answer (which cell) from the pixels in a few minutes of CPU. Grey per-image
speckle keeps distinct scenes apart under a perceptual hash, so only planted near-duplicates look alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

SIZE, CELL, SHAPE, INSET = 112, 56, 44, 6
GREYS = [(30, 30, 30), (100, 100, 100), (160, 160, 160), (230, 230, 230)]
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 230), "yellow": (240, 210, 30)}
SHAPES = ["square", "circle", "triangle"]
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(SHAPES)}


@dataclass(frozen=True)
class Shape:
    colour: str
    shape: str
    cell: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """x1, y1, x2, y2 in pixels."""
        x, y = (self.cell % 2) * CELL + INSET, (self.cell // 2) * CELL + INSET
        return x, y, x + SHAPE, y + SHAPE

    @property
    def expression(self) -> str:
        return f"the {self.colour} {self.shape}"


def random_scene(rng: random.Random, twin: bool = False) -> list[Shape]:
    """Two to four shapes of distinct colours in distinct cells; ``twin`` adds a copy of one shape (same colour and
    shape) in a free cell, so that its expression fits two objects."""
    n = rng.randint(2, 3 if twin else 4)
    cells = rng.sample(range(4), n + (1 if twin else 0))
    shapes = [Shape(c, rng.choice(SHAPES), cell) for c, cell in zip(rng.sample(list(COLOURS), n), cells)]
    if twin:
        first = shapes[0]
        shapes.append(Shape(first.colour, first.shape, cells[n]))
    return shapes


def draw(shapes: list[Shape], seed: int) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", (SIZE, SIZE))
    d = ImageDraw.Draw(img)
    for cell, grey in enumerate(GREYS):
        x, y = (cell % 2) * CELL, (cell // 2) * CELL
        d.rectangle([x, y, x + CELL - 1, y + CELL - 1], fill=grey)
    for _ in range(24):  # grey speckle: distinct perceptual hashes, and no colour that could pass for a shape's
        x, y, r, g = rng.randrange(SIZE), rng.randrange(SIZE), rng.randint(2, 5), rng.randrange(256)
        d.ellipse([x, y, x + r, y + r], fill=(g, g, g))
    for s in shapes:
        x1, y1, x2, y2 = s.box
        fill = COLOURS[s.colour]
        if s.shape == "square":
            d.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
        elif s.shape == "circle":
            d.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
        else:
            d.polygon([(x1, y2 - 1), (x2 - 1, y2 - 1), ((x1 + x2) / 2, y1)], fill=fill)
    return img


def answer(s: Shape) -> str:
    """A well-formed answer naming ``s`` (what the warm start imitates)."""
    return f'<think> {s.expression} </think><answer>{{"bbox_2d": [{", ".join(map(str, s.box))}]}}</answer>'
