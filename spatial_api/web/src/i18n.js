// Chinese (the default) and English: every user-facing text of the app, by key.

const TEXT = {
  zh: {
    app: "城市网格 CityHex", signin: "登录", signout: "退出", key: "API 密钥",
    keyHint: "粘贴管理员发给你的 API 密钥（换取短期令牌，勾选记住才保存密钥）", badKey: "密钥无效",
    preview: "图层预览", inspector: "网格员", dispatcher: "指挥调度", editor: "数据维护",
    lang: "English", role: "角色", layers: "图层", attributes: "属性表", noRows: "无要素", inCell: "你在网格", yours: "这是你的网格", whose: "负责人",
    outside: "不在网格内", tasks: "任务", report: "上报", outbox: "待发送",
    toVerify: "待核查", overdue: "超期", sortDeadline: "超期优先",
    sortNear: "最近优先", noTasks: "暂无任务", history: "处理记录", actions: "可执行操作",
    note: "备注", category: "类别", description: "描述", photos: "照片", useGps: "用 GPS 定位",
    tapMap: "或在地图上点选位置", location: "位置", submit: "提交", routed: "已派发给",
    cell: "网格", inspectorName: "网格员", department: "部门", deadline: "期限",
    duplicates: "附近可能重复的案件", attach: "并入此案", attached: "已并入案件",
    queued: "已加入待发送，联网后自动发送", sendNow: "立即发送", empty: "没有待发送的内容",
    failed: "失败", online: "在线", offline: "离线", queue: "案件队列", status: "状态", all: "全部", live: "实时",
    changed: "案件已被他人修改，已重新加载，请再确认", metrics: "考核指标",
    closeRate: "结案率", onTimeRate: "按期结案率", reworkRate: "返工率",
    openById: "按编号打开", open: "打开", save: "保存", saved: "已保存",
    conflict: "他人已先保存此要素：请逐项选择后合并保存", mine: "我的修改",
    theirs: "他人的版本", merge: "合并并保存", restore: "恢复此版本", version: "版本",
    import: "导入文件", importLayer: "导入到图层", upload: "上传", importReport: "导入报告",
    moveHint: "点击地图移动该点", move: "移动位置", download: "下载我的区域（离线地图）",
    downloaded: "离线地图已下载", delete: "删除", sharePos: "上班共享位置",
    coverage: "今日巡查覆盖", case: "案件", district: "区", since: "起始日期",
    workload: "网格覆盖与工作量", unassigned: "未分配", balance: "均衡度", heat: "热力图", ownership: "网格归属", positions: "网格员位置", evaluation: "综合评价",
    remember: "在本设备上记住密钥", ended: "登录已失效（密钥已停用），请重新登录",
    photosSent: "照片已上传", spotPhoto: "现场照片",
    photoRefused: "照片被拒", needsOwner: "需由提交人登录后发送", mapFailed: "地图加载失败",
    fixesSent: "已发送位置", patrolled: "已巡查网格", onDuty: "在岗分钟", score: "综合指标值",
    grade: "等级", group: "对象", noteRequired: "请先填写备注",
    redraw: "编辑形状", redrawHint: "拖动顶点可移动，拖动边上的中点可添加顶点，右键单击顶点可删除",
    cancel: "取消", geometry: "几何形状", vertices: "个顶点", keptTheirs: "已保留他人的版本",
    hotspots: "热点（Gi*）", legend: "图例",
  },
  en: {
    app: "CityHex", signin: "Sign in", signout: "Sign out", key: "API key",
    keyHint: "Paste the API key you were given (exchanged for a short-lived token; kept only if you tick remember)",
    badKey: "The key is not valid", preview: "Layer preview", inspector: "Inspector",
    dispatcher: "Dispatch", editor: "GIS editing", lang: "中文", role: "Role", layers: "Layers",
    attributes: "Attributes", noRows: "No features", inCell: "You are in cell",
    yours: "which is yours", whose: "responsible", outside: "Outside the grid", tasks: "Tasks",
    report: "Report", outbox: "Outbox", toVerify: "To verify",
    overdue: "overdue", sortDeadline: "Overdue first", sortNear: "Nearest first",
    noTasks: "No tasks", history: "History", actions: "Actions", note: "Note",
    category: "Category", description: "Description", photos: "Photos", useGps: "Use GPS",
    tapMap: "or tap the map", location: "Location", submit: "Submit", routed: "Routed to",
    cell: "Cell", inspectorName: "Inspector", department: "Department", deadline: "Deadline",
    duplicates: "Possible duplicates nearby", attach: "Attach to this one",
    attached: "Attached to case", queued: "Queued: it is sent when the network returns",
    sendNow: "Send now", empty: "Nothing waiting", failed: "failed",
    online: "online", offline: "offline", queue: "Case queue",
    status: "Status", all: "All", live: "live",
    changed: "Someone else changed the case: it was reloaded, please check again",
    metrics: "Metrics", closeRate: "Closed", onTimeRate: "Closed on time",
    reworkRate: "Rework", openById: "Open by id", open: "Open", save: "Save", saved: "Saved",
    conflict: "Someone else saved this feature first: choose per field, then merge and save",
    mine: "Mine", theirs: "Theirs", merge: "Merge and save", restore: "Restore this version",
    version: "Version", import: "Import a file", importLayer: "Into layer", upload: "Upload",
    importReport: "Import report", moveHint: "Click the map to move the point",
    move: "Move", download: "Download my area (offline map)", downloaded: "Offline map stored", delete: "Delete",
    sharePos: "Share my position on shift",
    coverage: "Coverage today", case: "Case", district: "District", since: "Since",
    workload: "Grid coverage and workload", unassigned: "unassigned", balance: "balance",
    heat: "Heat", ownership: "Grid ownership", positions: "Inspectors' positions",
    evaluation: "Evaluation",
    remember: "Remember the key on this device", ended: "The session ended (the key was revoked): sign in again",
    photosSent: "Photos uploaded",
    photoRefused: "photo refused", needsOwner: "waits for the person who queued it to sign in",
    mapFailed: "The map failed to load",
    spotPhoto: "Photo on the spot",
    fixesSent: "Positions sent", patrolled: "Cells patrolled", onDuty: "Minutes on duty",
    score: "Score", grade: "Grade", group: "Group", noteRequired: "Write a note first",
    redraw: "Edit shape", redrawHint: "Drag a vertex to move it, drag a midpoint to add one, right-click a vertex to delete it",
    cancel: "Cancel", geometry: "Geometry", vertices: "vertices", keptTheirs: "Their version is kept",
    hotspots: "Hotspots (Gi*)", legend: "Legend",
  },
};

let lang = localStorage.getItem("cityhex.lang") === "en" ? "en" : "zh";

/** The current language, "zh" or "en". */
export function language() {
  return lang;
}

/** Switch the language (kept in this browser). */
export function setLanguage(value) {
  lang = value;
  localStorage.setItem("cityhex.lang", value);
  document.documentElement.lang = value === "zh" ? "zh-CN" : "en";
}

/** The text of `key` in the current language. */
export function t(key) {
  return TEXT[lang][key] ?? TEXT.en[key] ?? key;
}

/** A date-time as the user reads it. */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : "—";
}
