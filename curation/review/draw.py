"""One review card's picture: the image with the label's boxes, every answer's boxes and the consensus."""

from __future__ import annotations

from PIL import Image, ImageDraw

from curation.review.items import Item

SIDE = 256  # longest side of a drawn card (small images are enlarged so a box edge stays visible)
LABEL, ANSWER, CONSENSUS, WRONG = (0, 210, 255), (255, 150, 30), (230, 40, 230), (230, 30, 30)
LEGEND = {"label": LABEL, "answers": ANSWER, "consensus / overlooked": CONSENSUS, "label the answers miss": WRONG}


def picture(item: Item) -> Image.Image:
    """The image (a grey placeholder naming the problem when it cannot be read) with the boxes drawn."""
    try:
        with Image.open(item.image_path) as img:
            img = img.convert("RGB")
    except (OSError, ValueError, TypeError) as exc:
        img = Image.new("RGB", (SIDE, SIDE), (90, 90, 90))
        ImageDraw.Draw(img).text((8, 8), f"image unreadable:\n{type(exc).__name__}", fill=(255, 255, 255))
        return img
    scale = SIDE / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    # boxes are in the original pixels the label was written for (item.width x item.height)
    sx, sy = img.width / item.width, img.height / item.height
    d = ImageDraw.Draw(img)

    def box(b, colour, width: int) -> None:
        x1, y1, x2, y2 = b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy
        if x2 > x1 and y2 > y1:  # a dark edge around the colour keeps it visible on a shape of the same colour
            d.rectangle([x1 - 1, y1 - 1, x2 + 1, y2 + 1], outline=(0, 0, 0), width=width + 2)
            d.rectangle([x1, y1, x2, y2], outline=colour, width=width)

    for dets in item.answers:
        for det in dets or ():
            box(det.bbox, ANSWER, 1)
    missed = {b["box_index"] for b in item.boxes if b["kind"] in ("bad_location", "never_predicted")}
    for i, t in enumerate(item.labels):
        box(t.bbox, WRONG if i in missed else LABEL, 3)
        if item.task == "ovd":
            d.text((t.bbox[0] * sx + 3, t.bbox[1] * sy + 2), t.label, fill=WRONG if i in missed else LABEL)
    if item.consensus:
        box(item.consensus, CONSENSUS, 2)
    for b in item.boxes:
        if b["kind"] == "overlooked":
            box(b["box"], CONSENSUS, 2)
    return img
