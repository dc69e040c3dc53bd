"""The review's two views: a self-contained HTML page (images inline, paged, worst first) and a contact sheet PNG."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image, ImageDraw

from curation.review.draw import LEGEND, picture
from curation.review.items import Item

PAGE = 24  # cards per page
SHEET_COLUMNS = 6

_STYLE = """body{font:14px system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
nav button{margin:2px;padding:4px 10px}nav button.on{font-weight:bold}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}.card img{display:block;max-width:100%}
.q{font-weight:600;margin:6px 0}.fired{color:#b00}.id{color:#777;font-size:12px;word-break:break-all}
table{border-collapse:collapse;font-size:12px}td{padding:1px 6px 1px 0}.legend span{margin-right:14px}
.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}"""

# Shows one page at a time; without scripts every page shows, one after another.
_SCRIPT = """const pages=[...document.querySelectorAll('section.page')];
function show(n){pages.forEach((p,i)=>p.hidden=i!==n);
document.querySelectorAll('nav button').forEach((b,i)=>b.classList.toggle('on',i===n));}
document.querySelectorAll('nav button').forEach((b,i)=>b.addEventListener('click',()=>show(i)));
if(pages.length)show(0);"""


def png_data(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _card(item: Item, rank: int) -> str:
    e = html.escape
    question = item.problem if item.task == "rec" else "detect: " + item.problem
    parts = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in item.parts.items()
                    if v is not None or k == "score")  # fmt: skip
    boxes = "".join(
        f"<tr><td>{e(b['label'])}</td><td>{e(b['kind'])}</td><td>hits {b['hits']:.2f}</td></tr>"
        for b in item.boxes if b["kind"] != "ok"
    )  # fmt: skip
    verdict = "unknown (too few answers parse)" if item.parts and item.parts.get("score") is None else ""
    return (
        f'<div class="card"><img alt="sample {e(item.sample_id)}" src="{png_data(picture(item))}">'
        f'<div class="q">#{rank} {e(question)}</div><div class="fired">{e(item.fired)}</div>'
        f"<div>{e(item.source)} / {e(item.task)}, {len([a for a in item.answers if a is not None])} of "
        f"{len(item.answers)} answers parse {e(verdict)}</div>"
        f"<table>{parts}</table><table>{boxes}</table><div class=id>{e(item.sample_id)}</div></div>"
    )


def write_page(items: list[Item], path: Path, title: str, chosen: int | None = None) -> Path:
    """The HTML page: a legend, page buttons, cards of ``PAGE`` per page; no file outside it is needed."""
    e = html.escape
    legend = "".join(f'<span><i class="sw" style="background:rgb{c}"></i>{e(n)}</span>' for n, c in LEGEND.items())
    pages = [items[i : i + PAGE] for i in range(0, len(items), PAGE)]
    nav = "".join(f"<button type=button>{n + 1}</button>" for n in range(len(pages))) if len(pages) > 1 else ""
    sections = "".join(
        '<section class="page"><div class="grid">'
        + "".join(_card(it, n * PAGE + i + 1) for i, it in enumerate(page))
        + "</div></section>"
        for n, page in enumerate(pages)
    )
    body = sections or "<p>No sample matched.</p>"
    path.write_text(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title><style>{_STYLE}</style>"
        f"</head><body><h1>{e(title)}</h1><p>{len(items)} of {chosen or len(items)} chosen samples, worst first.</p>"
        f"<p class=legend>{legend}</p>"
        f"<nav>{nav}</nav>{body}<script>{_SCRIPT}</script></body></html>"
    )
    return path


def write_sheet(items: list[Item], path: Path, title: str, limit: int = 24) -> Path:
    """The contact sheet: the first ``limit`` cards' pictures in a grid, each with its rank, score and question."""
    cell, caption = 256, 34
    shown = items[:limit]
    rows = max(1, -(-len(shown) // SHEET_COLUMNS))
    sheet = Image.new("RGB", (SHEET_COLUMNS * (cell + 8) + 8, 30 + rows * (cell + caption + 8)), (250, 250, 250))
    d = ImageDraw.Draw(sheet)
    d.text((8, 8), f"{title}: {len(shown)} of {len(items)} samples, worst first", fill=(20, 20, 20))
    for n, item in enumerate(shown):
        x, y = 8 + (n % SHEET_COLUMNS) * (cell + 8), 30 + (n // SHEET_COLUMNS) * (cell + caption + 8)
        img = picture(item)
        sheet.paste(img, (x, y))
        score = item.parts.get("score")
        text = f"#{n + 1} score {_fmt(score)}: {item.problem}"[:44]
        d.text((x, y + img.height + 4), text, fill=(20, 20, 20))
        d.text((x, y + img.height + 18), item.fired[:44], fill=(170, 0, 0))
    sheet.save(path)
    return path
