"""seed the departments and the standard incident categories of digital urban management

Major classes follow the event classification used by China's digital urban management
systems (市容环境, 宣传广告, 施工管理, 突发事件, 街面秩序, 市政设施); the time limits are
working hours.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"

DEPARTMENTS = [
    ("cgj", "城市管理和综合执法局", "Urban Management and Law Enforcement Bureau"),
    ("hw", "环境卫生管理处", "Sanitation Department"),
    ("zjj", "住房和建设局", "Housing and Construction Bureau"),
    ("swj", "水务局", "Water Authority"),
    ("jj", "公安交通警察局", "Traffic Police"),
    ("scj", "市场监督管理局", "Market Supervision Administration"),
    ("yl", "公园和园林管理中心", "Parks and Greening Centre"),
    ("rq", "燃气集团", "Gas Utility"),
    ("gd", "供电局", "Power Supply Bureau"),
    ("jtj", "交通运输局", "Transport Bureau"),
]

# code, major name, name, English name, working hours, department code
CATEGORIES = [
    ("0101", "市容环境", "私搭乱建", "Illegal construction", 40, "cgj"),
    ("0102", "市容环境", "暴露垃圾", "Exposed rubbish", 4, "hw"),
    ("0103", "市容环境", "积存垃圾渣土", "Accumulated rubbish and muck", 8, "hw"),
    ("0104", "市容环境", "道路不洁", "Dirty road", 4, "hw"),
    ("0105", "市容环境", "水域不洁", "Dirty waterway", 8, "swj"),
    ("0106", "市容环境", "绿地脏乱", "Untidy green space", 8, "yl"),
    ("0107", "市容环境", "废弃家具设备", "Abandoned furniture", 8, "hw"),
    ("0108", "市容环境", "非装饰性树挂", "Rubbish hanging in trees", 8, "yl"),
    ("0109", "市容环境", "焚烧垃圾树叶", "Burning rubbish or leaves", 2, "cgj"),
    ("0110", "市容环境", "公厕保洁不到位", "Unclean public toilet", 4, "hw"),
    ("0201", "宣传广告", "违章张贴小广告", "Illegal flyers", 8, "cgj"),
    ("0202", "宣传广告", "违规户外广告", "Unlicensed outdoor advertising", 40, "cgj"),
    ("0203", "宣传广告", "占道广告牌", "Advertising board blocking the road", 8, "cgj"),
    ("0204", "宣传广告", "非法悬挂横幅", "Illegal banner", 8, "cgj"),
    ("0301", "施工管理", "施工扰民", "Construction noise", 8, "zjj"),
    ("0302", "施工管理", "工地扬尘", "Construction dust", 8, "zjj"),
    ("0303", "施工管理", "道路遗撒", "Spillage on the road", 4, "cgj"),
    ("0304", "施工管理", "施工废弃料", "Construction waste", 16, "zjj"),
    ("0305", "施工管理", "违规占道施工", "Unpermitted roadworks", 8, "jtj"),
    ("0401", "突发事件", "路面塌陷", "Road collapse", 2, "jtj"),
    ("0402", "突发事件", "自来水管破裂", "Burst water main", 2, "swj"),
    ("0403", "突发事件", "燃气管道破裂", "Gas pipe rupture", 1, "rq"),
    ("0404", "突发事件", "下水道堵塞或破损", "Blocked or broken sewer", 4, "swj"),
    ("0405", "突发事件", "道路积水", "Flooded road", 2, "swj"),
    ("0406", "突发事件", "井盖缺失", "Missing manhole cover", 2, "swj"),
    ("0407", "突发事件", "环境污染", "Environmental pollution", 4, "cgj"),
    ("0501", "街面秩序", "无照经营游商", "Unlicensed street vendor", 2, "cgj"),
    ("0502", "街面秩序", "店外经营", "Trading outside the shop", 4, "cgj"),
    ("0503", "街面秩序", "占道废品收购", "Scrap collection on the pavement", 4, "cgj"),
    ("0504", "街面秩序", "机动车乱停放", "Illegally parked car", 2, "jj"),
    ("0505", "街面秩序", "非机动车乱停放", "Badly parked bicycles", 4, "jtj"),
    ("0506", "街面秩序", "露天烧烤", "Open-air barbecue", 2, "cgj"),
    ("0507", "街面秩序", "违规经营无证照", "Unlicensed business", 40, "scj"),
    ("0601", "市政设施", "路灯不亮", "Street lamp out", 16, "gd"),
    ("0602", "市政设施", "井盖破损", "Damaged manhole cover", 8, "swj"),
    ("0603", "市政设施", "消防栓损坏", "Damaged fire hydrant", 8, "swj"),
    ("0604", "市政设施", "道路破损", "Damaged road surface", 24, "jtj"),
    ("0605", "市政设施", "护栏损坏", "Damaged guard rail", 16, "jtj"),
    ("0606", "市政设施", "空气质量超标", "Air quality alarm", 4, "cgj"),
    ("0607", "市政设施", "噪声超标", "Noise alarm", 4, "cgj"),
    ("0608", "市政设施", "水位超警", "Water level alarm", 1, "swj"),
]


def upgrade() -> None:
    departments = sa.table(
        "departments", sa.column("code"), sa.column("name"), sa.column("name_en")
    )
    op.bulk_insert(departments, [{"code": c, "name": n, "name_en": e} for c, n, e in DEPARTMENTS])
    for code, major_name, name, name_en, hours, dept in CATEGORIES:
        op.execute(
            sa.text(
                "INSERT INTO incident_categories (code, major, minor, major_name, name, name_en,"
                " time_limit_hours, department_id)"
                " SELECT :code, :major, :minor, :major_name, :name, :name_en, :hours, id"
                " FROM departments WHERE code = :dept"
            ).bindparams(
                code=code,
                major=code[:2],
                minor=code[2:],
                major_name=major_name,
                name=name,
                name_en=name_en,
                hours=hours,
                dept=dept,
            )
        )


def downgrade() -> None:
    op.execute("DELETE FROM incident_categories")
    op.execute("DELETE FROM departments")
