"""HTML pages for people who open CityHex in a browser: the landing page's links, in
Chinese first and English, with nothing loaded from outside."""

from __future__ import annotations

from html import escape

LINK_NAMES = {
    "app": "网页应用 Web app",
    "service-doc": "接口文档 API documentation",
    "service-desc": "OpenAPI 定义 OpenAPI definition",
    "styles": "地图样式 Map styles",
    "data": "图层 Layers (OGC API Features)",
    "open-data": "开放数据 Open data",
    "conformance": "一致性 Conformance",
    "health": "健康检查 Health",
    "metrics": "监控指标 Metrics",
}
"""What each landing link is called on the page (links without a name are not listed)."""

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto;
  padding: 0 1rem; color: #1d2733; line-height: 1.5; }}
a {{ color: #0b63c5; }} li {{ margin: .4rem 0; }} small {{ color: #5b6673; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>城市空间运营服务：H3 网格、矢量瓦片、OGC API Features、事件、传感器与分析。<br>
<small>{description}</small></p>
<ul>
{items}
</ul>
<p><small>JSON: <a href="?f=json">?f=json</a></small></p>
</body>
</html>
"""


def landing_page(title: str, description: str, links: list[dict[str, str]]) -> str:
    """The landing page as HTML: one list item for each link a person would follow."""
    items = "\n".join(
        f'<li><a href="{escape(link["href"])}">{escape(LINK_NAMES[link["rel"]])}</a>'
        f"<br><small>{escape(link['title'])}</small></li>"
        for link in links
        if link["rel"] in LINK_NAMES
    )
    return PAGE.format(title=escape(title), description=escape(description), items=items)


def wants_html(accept: str | None, f: str | None) -> bool:
    """Whether the client asked for HTML: ``f=html``, or a browser's Accept header that
    names text/html before any JSON type (``*/*`` alone, as curl sends, means JSON)."""
    if f is not None:
        return f == "html"
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "application/geo+json"):
            return False
        if media == "text/html":
            return True
    return False
