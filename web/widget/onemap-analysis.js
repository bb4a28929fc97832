/*
 * onemap widget: the analysis panel (分析). Loaded by onemap-widget.js on first use
 * (widget.openAnalysis()); plain ES5, no build step.
 *
 * The processes are the server's (GET /processes?lang=): the form of each is built from
 * its description (GET /processes/{id}?lang=), input by input, with no code per process:
 *   - the schema keyword "x-onemap-input" (scenarios/processes/inputs.py) groups the
 *     inputs making one value and names the control: point (pick on the map), points
 *     (several points added on the map, numbered, sent as a GeoJSON MultiPoint), area (an
 *     admin unit from a list, or a polygon drawn on the map), id-set (features picked on
 *     the map from its collection, or ids typed), scenario (a list, GET /scenarios),
 *     time-window, date;
 *   - an integer naming a collection ("x-onemap-collection", e.g. a pipe segment's id):
 *     one feature, its id typed or the feature clicked on the map (within a few pixels),
 *     outlined on the map;
 *   - any other input by its schema: enum → select, number/integer → number field (its
 *     minimum/maximum), boolean → checkbox, format date/date-time → date fields, other
 *     strings → text, anything else → JSON.
 * Coordinates go as the map has them, longitude/latitude: crs "CRS84".
 *
 * Run: POST /processes/{id}/execution ({inputs, response: "document"}) with
 * "Prefer: respond-async" when the process allows it (jobControlOptions), then
 * GET /jobs/{id} until it ends, showing the stage
 * and the percentage; DELETE /jobs/{id} cancels. The results document
 * (GET /jobs/{id}/results?f=json): the summary as a table, every feature output drawn
 * from its tiles with its style and legend (GET /jobs/{id}/results/{output}/style); an
 * output whose features carry a coded property (a string enum, else a boolean, as the
 * output's schema declares) is drawn by class of that property, one legend entry each
 * (a valve to close or a stuck one; a pipe cut off only because a valve failed).
 * A refused input (400/404) shows the server's message next to the form and marks the
 * inputs it names.
 */
(function () {
  "use strict";

  var PREFIX = "onemap-analysis"; // sources and layers of the panel (the widget skips them)
  var INPUT_SOURCE = PREFIX + "-input";
  var CRS = "CRS84"; // the map's coordinates: longitude, latitude
  var ENDED = { successful: 1, failed: 1, dismissed: 1 };
  // A click picks the feature nearest to it within this many pixels: a thin line or a
  // small symbol is hard to hit exactly.
  var PICK_PX = 6;
  // Classes of a coded property (enum values in their declared order), and a boolean's
  // true: a line dashed in magenta (no theme draws magenta, and it stands out on the
  // orange of a main road), a point in red, a polygon outlined in magenta.
  var CLASS_COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#0891b2", "#ca8a04",
    "#db2777", "#4b5563"];
  var OTHER_COLOUR = "#9ca3af";
  var FLAG_COLOUR = "#c026d3";
  var FLAG_POINT = "#dc2626";
  var PICKED_COLOUR = "#7c3aed";

  var TEXT = {
    zh: {
      analysis: "分析", process: "分析功能", choose: "选择分析…", run: "运行", cancel: "取消",
      close: "关闭", clear: "清除结果", pick: "在地图上选点", picking: "请点击地图…",
      unit: "行政单元", polygon: "绘制多边形", draw: "开始绘制", finish: "完成",
      drawing: "单击添加顶点，双击或点“完成”结束", vertices: "个顶点", redraw: "清除",
      choosePick: "在地图上选择", ids: "id，逗号分隔", none: "（无）", start: "开始", end: "结束",
      loading: "加载中…", results: "结果", legend: "图例", summary: "摘要", refused: "输入有误",
      failed: "运行失败", dismissed: "已取消", successful: "已完成", accepted: "已提交",
      running: "运行中", required: "必填", lonlat: "经纬度（CRS84）", features: "个要素",
      noProcesses: "没有可用的分析", error: "出错", yes: "是", no: "否", items: "项",
      street_office: "街道", community: "社区", grid: "网格", district: "区",
      area: "区域", level: "级别", id: "编号", name: "名称", as_of: "统计日期",
      tags: "标签", ambiguous: "边界附近", candidates: "候选", building: "最近楼栋",
      household: "最近户室", reachable_km: "可达里程（公里）", edges: "道路段数", origins: "起点数",
      distance_m: "距离（米）", mode: "方式", walk: "步行", drive: "驾车", facilities: "设施", new_facilities: "新增设施",
      capacity_total: "处理能力（吨/日）", closed_roads: "关闭道路", scenario: "情景",
      picked: "已选", notFound: "未找到或无权查看", size: "大小",
      addPoints: "在地图上添加候选点", adding: "单击地图添加点；再点此处结束",
      removePoint: "移除", clearPoints: "清除全部", points: "个点",
      noPoints: "未添加（使用默认）",
      // refuse-placement: its summary, and the classes its outputs are drawn by
      objective: "目标值", objective_unit: "目标值单位", bound: "下界", gap: "最优间隙",
      heuristic_objective: "启发式目标值", solve_time_s: "求解用时（秒）", sites_opened: "新增站点",
      sites_closed: "关闭站点", existing: "现有", new: "新建", within_reach: "服务半径内",
      // refuse-flow: its summary, and the classes its outputs are drawn by
      status: "状态", message: "说明", day: "日期", refuse_t: "垃圾量（吨）",
      tonne_km: "运输量（吨公里）", unplaced_t: "未消纳（吨）", refuse_buildings: "垃圾楼",
      transfer_stations: "转运站", treatment_plants: "处理厂", warning_ratio: "预警阈值",
      warnings_plan: "预警设施（方案）", warnings_readings: "预警设施（当日计量）",
      over_capacity_if_nearest: "就近转运超负荷设施", warning: "预警", tonnes: "吨数",
      basis: "依据", readings: "当日计量", forecast: "预测", streams: "垃圾类别",
      stream: "垃圾类别", outages: "停运设施", by_stream: "分类明细", outage: "停运",
      other: "其他垃圾", kitchen: "厨余垃圾", recyclable: "可回收物", hazardous: "有害垃圾",
      maintenance: "计划检修", breakdown: "设备故障",
      // spill-trace: its summary
      reports: "溯源上报数", context_reports: "参考的附近上报", window_h: "时间窗（小时）",
      suspects: "嫌疑车辆",
      loaded_suspects: "重载嫌疑车辆", top_truck_id: "首位嫌疑车辆", top_plate: "首位车牌",
      top_score: "首位得分", flags: "标记", timings: "用时（秒）", unauthorised: "无运单",
      wrong_disposal_site: "消纳场不符", no_disposal_seen: "未见入场", overloaded: "超载",
      dumped_outside: "场外偷倒", dump: "疑似偷倒点",
      // pipeline-incident: its summary, and the classes its outputs are drawn by
      utility: "管线类型", water: "供水", drainage: "排水", gas: "燃气", heat: "供热",
      failed_segment: "事故管段", found_by: "定位方式", snap_distance_m: "吸附距离（米）",
      alarm: "监测报警", radius_m: "影响半径（米）", radius_basis: "半径依据",
      road_buffer_m: "道路管制范围（米）", isolated: "隔离", sources_inside: "段内水源/气源/热源",
      rings: "关阀圈数（阀门失效次数）", valves_to_close: "需关闭阀门", stuck_valves: "失效阀门",
      already_closed: "原已关闭阀门", left_open: "无需关闭阀门", isolated_pipes: "隔离管段数",
      isolated_km: "隔离管长（公里）", cut_off_pipes: "停供管段数", cut_off_km: "停供管长（公里）",
      buildings: "停供楼栋", contacts: "需通知居民", key_units: "重点单位",
      key_units_cut_off: "停供重点单位", hazard_sources: "危险源", roads: "需管制道路",
      fallback: "因阀门失效扩大", pipes: "管段", km: "公里", stuck: "失效（卡死/不可操作）",
      cut_off: "停供", along_failed: "紧邻事故管段", complete: "完整可达", operable: "可操作",
      ring: "圈", segment: "管段", point: "位置",
    },
    en: {
      analysis: "Analysis", process: "Analysis", choose: "Choose an analysis…", run: "Run",
      cancel: "Cancel", close: "Close", clear: "Clear results", pick: "Pick on the map",
      picking: "Click the map…", unit: "Admin unit", polygon: "Draw a polygon",
      draw: "Start drawing", finish: "Finish",
      drawing: "Click to add vertices; double-click or Finish to end", vertices: "vertices",
      redraw: "Clear", choosePick: "Pick on the map", ids: "ids, comma-separated",
      none: "(none)", start: "Start", end: "End", loading: "Loading…", results: "Results",
      legend: "Legend", summary: "Summary", refused: "Invalid input", failed: "Failed",
      dismissed: "Cancelled", successful: "Done", accepted: "Accepted", running: "Running",
      required: "required", lonlat: "longitude/latitude (CRS84)", features: "features",
      noProcesses: "No analyses available", error: "Error", yes: "Yes", no: "No", items: "items",
      street_office: "Street office", community: "Community", grid: "Grid", district: "District",
      point: "Location", area: "Area", level: "Level", id: "Id", name: "Name", as_of: "As of",
      tags: "Tags", ambiguous: "Near a boundary", candidates: "Candidates",
      building: "Nearest building", household: "Nearest household",
      reachable_km: "Reachable (km)", edges: "Road edges", origins: "Origins",
      distance_m: "Distance (m)", mode: "Mode", walk: "walk", drive: "drive", facilities: "Facilities",
      new_facilities: "New facilities", capacity_total: "Capacity (t/day)",
      closed_roads: "Closed roads", scenario: "Scenario",
      picked: "Picked", notFound: "not found, or not yours to see", size: "Size",
      addPoints: "Add points on the map", adding: "Click the map to add points; click here to stop",
      removePoint: "Remove", clearPoints: "Clear all", points: "points",
      noPoints: "None added (the default applies)",
      objective: "Objective", objective_unit: "Objective unit", bound: "Bound",
      gap: "Optimality gap", heuristic_objective: "Heuristic objective", solve_time_s: "Solve time (s)",
      sites_opened: "Sites opened", sites_closed: "Sites closed", existing: "existing", new: "new",
      within_reach: "Within reach",
      status: "Status", message: "Message", day: "Day", refuse_t: "Refuse (t)",
      tonne_km: "Haulage (t·km)", unplaced_t: "Unplaced (t)", refuse_buildings: "Refuse buildings",
      transfer_stations: "Transfer stations", treatment_plants: "Treatment plants",
      warning_ratio: "Warning threshold", warnings_plan: "Warnings (plan)",
      warnings_readings: "Warnings (readings)", over_capacity_if_nearest: "Overloaded if nearest",
      warning: "Warning", tonnes: "Tonnes",
      basis: "Basis", readings: "readings", forecast: "forecast", streams: "Streams",
      stream: "Stream", outages: "Outages", by_stream: "By stream", outage: "Outage",
      other: "other waste", kitchen: "kitchen waste", recyclable: "recyclables",
      hazardous: "hazardous waste", maintenance: "maintenance", breakdown: "breakdown",
      reports: "Reports traced", context_reports: "Reports nearby weighed",
      window_h: "Window (h)", suspects: "Suspects",
      loaded_suspects: "Loaded suspects", top_truck_id: "Top suspect", top_plate: "Top plate",
      top_score: "Top score", flags: "Flags", timings: "Timings (s)",
      unauthorised: "no waybill", wrong_disposal_site: "wrong disposal site",
      no_disposal_seen: "no disposal entry seen", overloaded: "overloaded",
      dumped_outside: "dumped outside any disposal site", dump: "suspected illegal dump",
      utility: "Utility", water: "water", drainage: "drainage", gas: "gas", heat: "heat",
      failed_segment: "Failed segment", found_by: "Found by", snap_distance_m: "Snap distance (m)",
      alarm: "Sensor alarm", radius_m: "Impact radius (m)", radius_basis: "Radius basis",
      road_buffer_m: "Road buffer (m)", isolated: "Isolated", sources_inside: "Sources inside",
      rings: "Rings (valve failures)", valves_to_close: "Valves to close", stuck_valves: "Stuck valves",
      already_closed: "Already closed", left_open: "Left open", isolated_pipes: "Isolated pipes",
      isolated_km: "Isolated (km)", cut_off_pipes: "Pipes cut off", cut_off_km: "Cut off (km)",
      buildings: "Buildings losing supply", contacts: "Residents to notify", key_units: "Key units",
      key_units_cut_off: "Key units cut off", hazard_sources: "Hazard sources", roads: "Roads to close",
      fallback: "Widened by failed valves", pipes: "pipes", km: "km",
      stuck: "stuck (or not operable)", cut_off: "cut off", along_failed: "along the failed pipe",
      complete: "complete", operable: "operable", ring: "ring", segment: "segment",
    },
  };

  function injectCss() {
    if (document.getElementById("onemap-analysis-css")) return;
    var s = document.createElement("style");
    s.id = "onemap-analysis-css";
    s.textContent = [
      ".onemap-analysis{right:50px;top:8px;width:310px;max-height:calc(100% - 50px);z-index:4}",
      ".onemap-root.onemap-analysing .onemap-right{right:370px}",
      ".onemap-analysis select,.onemap-analysis input[type=number],.onemap-analysis input[type=text],",
      ".onemap-analysis input[type=date],.onemap-analysis input[type=datetime-local],.onemap-analysis textarea",
      "{box-sizing:border-box;width:100%;padding:3px;margin:1px 0}",
      ".onemap-field{margin:6px 0;padding:4px;border:1px solid #e4e4e4;border-radius:4px}",
      ".onemap-field>label{display:block;font-weight:600;font-size:12px}",
      ".onemap-field.onemap-invalid{border-color:#c33;background:#fff4f4}",
      ".onemap-field-error,.onemap-analysis-error{color:#a33;font-size:12px;white-space:pre-wrap}",
      ".onemap-hint{color:#666;font-size:11px}",
      ".onemap-pair{display:flex;gap:4px}.onemap-pair>*{flex:1}",
      ".onemap-analysis progress{width:100%}",
      ".onemap-analysis .onemap-kv td:first-child{white-space:nowrap;word-break:normal}",
      ".onemap-ramp{display:inline-block;width:60px;height:10px;margin-right:6px;vertical-align:middle;border:1px solid #555}",
      ".onemap-picked{color:" + PICKED_COLOUR + ";font-size:12px}",
      ".onemap-points{margin:2px 0;padding:0;list-style:none;font-size:12px}",
      ".onemap-points li{display:flex;align-items:center;gap:4px}",
      ".onemap-points li>span{flex:1}",
      ".onemap-point-marker{width:20px;height:20px;border-radius:50%;background:#7c3aed;color:#fff;",
      "border:2px solid #fff;font:bold 11px/20px sans-serif;text-align:center;box-shadow:0 0 2px #000;",
      "cursor:default}",
    ].join("");
    document.head.appendChild(s);
  }

  /* The part of a bilingual server message ("counting / 统计中 (1/2)") in `lang`. */
  function inLang(message, lang) {
    if (!message) return "";
    var m = /^(.*?) \/ (.*?)( \(\d+\/\d+\))?( \d+%)?$/.exec(message);
    if (!m) return message;
    var zh = /[\u4e00-\u9fff]/.test(m[2]);
    return (lang === "zh" ? (zh ? m[2] : m[1]) : (zh ? m[1] : m[2])) + (m[3] || "") + (m[4] || "");
  }

  /* The control an input wants: its x-onemap-input hint, else one from its schema. */
  function hintOf(name, spec) {
    var schema = (spec && spec.schema) || {};
    var hint = schema["x-onemap-input"];
    if (hint && hint.kind) return hint;
    var kind = "json";
    if (Array.isArray(schema.enum)) kind = "enum";
    else if (schema.type === "integer" && schema["x-onemap-collection"]) kind = "feature";
    else if (schema.type === "number" || schema.type === "integer") kind = "number";
    else if (schema.type === "boolean") kind = "boolean";
    else if (schema.type === "string" && (schema.format === "date" || schema.format === "date-time")) kind = "date";
    else if (schema.type === "object" && schema.properties && schema.properties.start && schema.properties.end) kind = "time-window";
    else if (schema.type === "array" && schema["x-onemap-collection"]) kind = "id-set";
    else if (schema.type === "string") kind = "text";
    return { kind: kind, group: name, collection: schema["x-onemap-collection"] };
  }

  /* The inputs of a description grouped into the values a form asks for, in order. */
  function groupsOf(description) {
    var groups = [];
    var byKey = {};
    var inputs = (description && description.inputs) || {};
    Object.keys(inputs).forEach(function (name) {
      var spec = inputs[name];
      var hint = hintOf(name, spec);
      var key = hint.group || name;
      var g = byKey[key];
      if (!g) {
        g = byKey[key] = { key: key, kind: hint.kind, parts: {}, names: [], required: false,
          collection: hint.collection || null, list: hint.list || null };
        groups.push(g);
      }
      if (hint.collection && !g.collection) g.collection = hint.collection;
      g.parts[hint.part || "value"] = { name: name, spec: spec, hint: hint };
      g.names.push(name);
      if (spec.minOccurs >= 1) g.required = true;
    });
    return groups;
  }

  function Analysis(widget, helpers) {
    this.w = widget;
    this.el = helpers.el;
    this.processes = null;   // [{id, title, description, jobControlOptions}]
    this.process = null;     // the chosen process's description
    this.groups = [];
    this.values = {};        // group key → what the form holds
    this.job = null;         // {id, status, progress, message, log: [{status, progress, message}]}
    this.results = null;     // {jobId, process, document, summary, layers: [...]}
    this.error = null;       // {status, message, inputs: [names]}
    this.mode = null;        // {kind: "point"|"draw"|"ids", group} while the map is an input
    this.isOpen = false;
    this._lists = {};        // url → Promise of [{id, name}]
    injectCss();
    this._build();
  }

  Analysis.prototype.t = function (key) {
    return TEXT[this.w.lang][key] || this.w.t(key);
  };

  /* A coded value (an enum option, a summary key) in words where the widget has them
   * (community → 社区), else as it is; the code stays in the request. */
  Analysis.prototype._word = function (code) {
    var key = String(code);
    var words = TEXT[this.w.lang][key] || this.w.t(key);
    return words && words !== key ? words + (this.w.lang === "zh" ? "（" + key + "）" : "") : key;
  };

  Analysis.prototype.request = function (method, path, body, headers) {
    var w = this.w;
    var opts = { method: method, headers: w.headers() };
    Object.keys(headers || {}).forEach(function (k) { opts.headers[k] = headers[k]; });
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var url = /^https?:/.test(path) ? path : w.base + path;
    return fetch(url, opts).then(function (r) {
      if (r.status === 401) w._authRequired(401);
      return r.json().catch(function () { return null; }).then(function (data) {
        return { status: r.status, ok: r.ok, data: data };
      });
    }, function (err) { return { status: 0, ok: false, data: null, error: String(err) }; });
  };

  Analysis.prototype._build = function () {
    var self = this;
    var el = this.el;
    this.ui = {};
    this.ui.title = el("b");
    this.ui.close = el("button", { className: "onemap-btn", testid: "onemap-analysis-close",
      onclick: function () { self.close(); } });
    this.ui.select = el("select", { testid: "onemap-analysis-process" });
    this.ui.select.addEventListener("change", function () {
      if (self.ui.select.value) self.choose(self.ui.select.value);
    });
    this.ui.about = el("div", { className: "onemap-hint", testid: "onemap-analysis-description" });
    this.ui.form = el("form", { testid: "onemap-analysis-form" });
    this.ui.form.addEventListener("submit", function (e) { e.preventDefault(); self.run(); });
    this.ui.error = el("div", { className: "onemap-analysis-error", testid: "onemap-analysis-error",
      role: "alert" });
    this.ui.run = el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-run",
      onclick: function () { self.run(); } });
    this.ui.cancel = el("button", { type: "button", className: "onemap-btn",
      testid: "onemap-analysis-cancel", onclick: function () { self.cancel(); } });
    this.ui.progress = el("div", { testid: "onemap-analysis-progress" });
    this.ui.results = el("div", { testid: "onemap-analysis-results" });
    this.ui.box = el("div", { className: "onemap-box onemap-analysis", testid: "onemap-analysis" }, [
      el("div", {}, [this.ui.close, " ", this.ui.title]), this.ui.select, this.ui.about,
      this.ui.form, el("div", {}, [this.ui.run, this.ui.cancel]), this.ui.error,
      this.ui.progress, this.ui.results]);
    this.ui.box.style.display = "none";
    this.w.root.appendChild(this.ui.box);
    this.render();
  };

  /* Show the panel and list the processes; Promise of the list. */
  Analysis.prototype.open = function () {
    this.isOpen = true;
    this.ui.box.style.display = "";
    this.w.root.classList.add("onemap-analysing");
    return this.listProcesses();
  };

  Analysis.prototype.close = function () {
    this.isOpen = false;
    this._setMode(null);
    this.ui.box.style.display = "none";
    this.w.root.classList.remove("onemap-analysing");
  };

  /* Promise of the processes, titled in the widget's language (GET /processes?lang=). */
  Analysis.prototype.listProcesses = function () {
    var self = this;
    var lang = this.w.lang;
    return this.request("GET", "/processes?f=json&limit=100&lang=" + lang).then(function (r) {
      var list = r.ok && r.data && Array.isArray(r.data.processes) ? r.data.processes : [];
      if (lang !== self.w.lang) return self.processes;  // the language changed meanwhile
      self.processes = list.map(function (p) {
        return { id: p.id, title: p.title, description: p.description,
          jobControlOptions: p.jobControlOptions || [] };
      });
      self.listStatus = r.status;
      self.render();
      return self.processes;
    });
  };

  /* Choose a process: its description (GET /processes/{id}?lang=) and its form. */
  Analysis.prototype.choose = function (id) {
    var self = this;
    var lang = this.w.lang;
    var same = this.process && this.process.id === id;
    if (!same) {
      this.values = {};
      this.error = null;
      this._setMode(null);
      this._drawInputs();
    }
    this.chosen = id;
    return this.request("GET", "/processes/" + encodeURIComponent(id) + "?f=json&lang=" + lang)
      .then(function (r) {
        if (self.chosen !== id || lang !== self.w.lang) return self.process;
        if (!r.ok || !r.data || !r.data.inputs) {
          self.error = { status: r.status, message: (r.data && r.data.description) ||
            self.t("error") + " " + r.status, inputs: [] };
          self.process = null;
          self.groups = [];
        } else {
          self.process = r.data;
          self.groups = groupsOf(r.data);
          self.groups.forEach(function (g) { self._defaults(g); });
        }
        self.render();
        return self.process;
      });
  };

  /* A group's starting values (the schema's defaults), once. */
  Analysis.prototype._defaults = function (g) {
    if (this.values[g.key]) return;
    var v = this.values[g.key] = {};
    var value = g.parts.value;
    if (g.kind === "area") {
      var levels = (g.parts.level && g.parts.level.spec.schema.enum) || [];
      v.mode = g.parts.level ? "unit" : "polygon";
      v.level = levels[0] || null;
      v.unit = "";
      v.ring = [];
    } else if (g.kind === "point") {
      v.x = ""; v.y = "";
    } else if (g.kind === "points") {
      v.points = [];
    } else if (g.kind === "id-set") {
      v.ids = "";
    } else if (g.kind === "time-window") {
      v.start = ""; v.end = "";
    } else if (value) {
      var d = value.spec.schema["default"];
      v.value = d === undefined || d === null ? "" : (g.kind === "boolean" ? !!d :
        (typeof d === "object" ? JSON.stringify(d) : String(d)));
    }
  };

  /* Fill the form from execute inputs as a request would carry them ({segment: 7}, or
   * {x, y, utility} with x/y in CRS84), every other value back to its default; the
   * features named are looked up and outlined. Returns the form's values. */
  Analysis.prototype.prefill = function (inputs) {
    var self = this;
    var given = inputs || {};
    var has = function (name) { return Object.prototype.hasOwnProperty.call(given, name); };
    var text = function (x) { return typeof x === "object" && x !== null ? JSON.stringify(x) : String(x); };
    this.values = {};
    this.error = null;
    this._setMode(null);
    this.groups.forEach(function (g) {
      self._defaults(g);
      var v = self.values[g.key];
      var p = g.parts;
      var first = p.value || p[Object.keys(p)[0]];
      if (g.kind === "point") {
        if (has(p.x.name) && has(p.y.name)) { v.x = String(given[p.x.name]); v.y = String(given[p.y.name]); }
      } else if (g.kind === "points") {
        var mp = p.points && given[p.points.name];
        if (mp && mp.type === "MultiPoint" && Array.isArray(mp.coordinates)) {
          v.points = mp.coordinates.map(function (c) { return [Number(c[0]), Number(c[1])]; });
        }
      } else if (g.kind === "area") {
        if (p.level && has(p.level.name)) {
          v.mode = "unit";
          v.level = given[p.level.name];
          v.unit = p.unit_id && has(p.unit_id.name) ? String(given[p.unit_id.name]) : "";
        } else if (p.polygon && has(p.polygon.name) && given[p.polygon.name].type === "Polygon") {
          v.mode = "polygon";
          v.ring = given[p.polygon.name].coordinates[0].slice(0, -1);
          v.closed = v.ring.length >= 3;
        }
      } else if (g.kind === "id-set") {
        if (Array.isArray(given[first.name])) v.ids = given[first.name].join(",");
      } else if (g.kind === "time-window") {
        if (given[first.name]) { v.start = given[first.name].start || ""; v.end = given[first.name].end || ""; }
      } else if (has(first.name)) {
        v.value = g.kind === "boolean" ? !!given[first.name] : text(given[first.name]);
      }
      if (g.kind === "feature" || g.kind === "id-set") self._lookUp(g, v);
    });
    this.render();
    this._drawInputs();
    return this.values;
  };

  /* ---- rendering ---- */

  Analysis.prototype.render = function () {
    var self = this;
    var el = this.el;
    this.ui.title.textContent = this.t("analysis");
    this.ui.close.textContent = this.t("close");
    this.ui.run.textContent = this.t("run");
    this.ui.cancel.textContent = this.t("cancel");
    // the process list
    var sel = this.ui.select;
    sel.textContent = "";
    sel.appendChild(el("option", { value: "", text: this.processes && !this.processes.length ?
      this.t("noProcesses") : this.t("choose") }));
    (this.processes || []).forEach(function (p) {
      var o = el("option", { value: p.id, text: p.title || p.id, title: p.description || "" });
      sel.appendChild(o);
    });
    sel.value = this.chosen || "";
    this.ui.about.textContent = this.process ? (this.process.description || "") : "";
    // the form
    this.ui.form.textContent = "";
    this.groups.forEach(function (g) { self.ui.form.appendChild(self._field(g)); });
    // the error, next to the form
    this.ui.error.textContent = this.error ? this.t("refused") + " (" + this.error.status + ")" +
      (this.w.lang === "zh" ? "：" : ": ") + this.error.message : "";
    this.renderStatus();
  };

  /* The run's state only (the form is left as it is, with what is being typed in it). */
  Analysis.prototype.renderStatus = function () {
    var running = !!(this.job && !ENDED[this.job.status]);
    this.ui.run.disabled = !this.process || running;
    this.ui.cancel.style.display = running ? "" : "none";
    this._renderProgress();
    this._renderResults();
  };

  /* The inputs a refusal names: "invalid input / 输入无效: x/y: …" or "unit_id: no …". */
  function namedInputs(message, known) {
    var names = [];
    var text = String(message || "");
    var at = text.indexOf("输入无效: ");
    var rest = at >= 0 ? text.slice(at + 6) : text;
    rest.split(/;\s*/).forEach(function (part) {
      var head = part.split(":")[0].trim();
      head.split(/[\/.]/).forEach(function (n) {
        if (known.indexOf(n) >= 0 && names.indexOf(n) < 0) names.push(n);
      });
    });
    return names;
  }

  Analysis.prototype._field = function (g) {
    var self = this;
    var el = this.el;
    var v = this.values[g.key] || {};
    var invalid = this.error && this.error.inputs.some(function (n) { return g.names.indexOf(n) >= 0; });
    var box = el("div", { className: "onemap-field" + (invalid ? " onemap-invalid" : ""),
      testid: "onemap-analysis-field", "data-input": g.key, "data-kind": g.kind,
      "data-invalid": invalid ? "true" : "false" });
    var first = g.parts.value || g.parts.level || g.parts.x || g.parts[Object.keys(g.parts)[0]];
    var title = first.spec.title || first.name;
    if (g.kind === "point" || g.kind === "area") title = this.t(g.kind);
    box.appendChild(el("label", { text: title + (g.required ? " *" : ""),
      title: (first.spec.description || "") }));
    var control = {
      point: this._pointControl, points: this._pointsControl, area: this._areaControl,
      "id-set": this._idsControl,
      feature: this._featureControl, scenario: this._scenarioControl,
      "time-window": this._windowControl,
    }[g.kind] || this._valueControl;
    control.call(this, g, v, box);
    if (first.spec.description && g.kind !== "area" && g.kind !== "point") {
      box.appendChild(el("div", { className: "onemap-hint", text: first.spec.description }));
    }
    if (invalid) {
      box.appendChild(el("div", { className: "onemap-field-error", testid: "onemap-analysis-field-error",
        text: this.error.message }));
    }
    return box;
  };

  function setter(v, key, after) {
    return function (e) {
      var t = e.target;
      v[key] = t.type === "checkbox" ? t.checked : t.value;
      if (after) after();
    };
  }

  Analysis.prototype._valueControl = function (g, v, box) {
    var el = this.el;
    var part = g.parts.value || g.parts[Object.keys(g.parts)[0]];
    var schema = part.spec.schema || {};
    var input;
    if (g.kind === "enum") {
      input = el("select", { name: part.name });
      if (!g.required && schema["default"] === undefined) input.appendChild(el("option", { value: "", text: this.t("none") }));
      var self = this;
      schema.enum.forEach(function (option) {
        input.appendChild(el("option", { value: String(option), text: self._word(option) }));
      });
      input.value = v.value;
    } else if (g.kind === "number") {
      input = el("input", { type: "number", name: part.name,
        step: schema.type === "integer" ? "1" : "any" });
      if (schema.minimum !== undefined) input.min = String(schema.minimum);
      if (schema.maximum !== undefined) input.max = String(schema.maximum);
      input.value = v.value;
    } else if (g.kind === "boolean") {
      input = el("input", { type: "checkbox", name: part.name });
      input.checked = !!v.value;
    } else if (g.kind === "date") {
      input = el("input", { type: schema.format === "date-time" ? "datetime-local" : "date", name: part.name });
      input.value = v.value;
    } else if (g.kind === "text") {
      input = el("input", { type: "text", name: part.name });
      input.value = v.value;
    } else {
      input = el("textarea", { name: part.name, rows: "3", placeholder: "JSON" });
      input.value = v.value;
    }
    input.setAttribute("data-testid", "onemap-analysis-input");
    input.setAttribute("data-name", part.name);
    input.addEventListener("change", setter(v, "value"));
    input.addEventListener("input", setter(v, "value"));
    box.appendChild(input);
  };

  Analysis.prototype._pointControl = function (g, v, box) {
    var self = this;
    var el = this.el;
    var x = el("input", { type: "number", step: "any", name: g.parts.x.name, testid: "onemap-analysis-input",
      "data-name": g.parts.x.name, placeholder: g.parts.x.name });
    var y = el("input", { type: "number", step: "any", name: g.parts.y.name, testid: "onemap-analysis-input",
      "data-name": g.parts.y.name, placeholder: g.parts.y.name });
    x.value = v.x; y.value = v.y;
    var redraw = function () { self._drawInputs(); };
    x.addEventListener("input", setter(v, "x", redraw));
    y.addEventListener("input", setter(v, "y", redraw));
    var picking = this.mode && this.mode.group === g.key;
    var pick = el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-pick",
      "data-input": g.key, text: picking ? this.t("picking") : this.t("pick"),
      onclick: function () { self._setMode(picking ? null : { kind: "point", group: g.key }); } });
    box.appendChild(el("div", { className: "onemap-pair" }, [x, y]));
    box.appendChild(pick);
    box.appendChild(el("span", { className: "onemap-hint", text: " " + this.t("lonlat") }));
  };

  /* Several points (kind "points", a GeoJSON MultiPoint): 在地图上添加候选点 / Add points on
   * the map, then each click adds one, numbered on the map and listed here with a button
   * to remove it; 清除全部 / Clear all empties the list. None added: the input is left out
   * (the process's default applies). */
  Analysis.prototype._pointsControl = function (g, v, box) {
    var self = this;
    var el = this.el;
    var pts = v.points || (v.points = []);
    var adding = !!(this.mode && this.mode.kind === "points" && this.mode.group === g.key);
    var changed = function () { self._drawInputs(); self.render(); };
    box.appendChild(el("div", {}, [
      el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-pick",
        "data-input": g.key, "data-active": adding ? "true" : "false",
        text: adding ? this.t("adding") : this.t("addPoints"),
        onclick: function () { self._setMode(adding ? null : { kind: "points", group: g.key }); } }),
      " ",
      el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-points-clear",
        "data-input": g.key, text: this.t("clearPoints"),
        onclick: function () { v.points = []; changed(); } }),
    ]));
    var list = el("ol", { className: "onemap-points", testid: "onemap-analysis-points",
      "data-input": g.key, "data-count": String(pts.length) });
    pts.forEach(function (p, i) {
      list.appendChild(el("li", { testid: "onemap-analysis-point", "data-input": g.key,
        "data-index": String(i + 1), "data-lon": String(p[0]), "data-lat": String(p[1]) }, [
        el("span", { text: (i + 1) + ". " + p[0].toFixed(6) + ", " + p[1].toFixed(6) }),
        el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-point-remove",
          "data-input": g.key, "data-index": String(i + 1), text: self.t("removePoint"),
          onclick: function () { v.points.splice(i, 1); changed(); } }),
      ]));
    });
    box.appendChild(list);
    box.appendChild(el("div", { className: "onemap-hint", text: (pts.length ? pts.length + " " +
      this.t("points") : this.t("noPoints")) + " · " + this.t("lonlat") }));
  };

  Analysis.prototype._areaControl = function (g, v, box) {
    var self = this;
    var el = this.el;
    var mode = el("select", { testid: "onemap-analysis-area-mode", "data-input": g.key });
    if (g.parts.level) mode.appendChild(el("option", { value: "unit", text: this.t("unit") }));
    if (g.parts.polygon) mode.appendChild(el("option", { value: "polygon", text: this.t("polygon") }));
    mode.value = v.mode;
    mode.addEventListener("change", function () {
      v.mode = mode.value;
      self._setMode(null);
      self.render();
      self._drawInputs();
    });
    box.appendChild(mode);
    if (v.mode === "unit" && g.parts.level) {
      var level = el("select", { name: g.parts.level.name, testid: "onemap-analysis-level",
        "data-input": g.key });
      (g.parts.level.spec.schema.enum || []).forEach(function (l) {
        level.appendChild(el("option", { value: l, text: self.t(l) }));
      });
      level.value = v.level;
      var unit = el("select", { name: g.parts.unit_id ? g.parts.unit_id.name : "unit_id",
        testid: "onemap-analysis-unit", "data-input": g.key, "data-loading": "true" });
      unit.appendChild(el("option", { value: "", text: this.t("loading") }));
      level.addEventListener("change", function () { v.level = level.value; v.unit = ""; self.render(); });
      unit.addEventListener("change", function () { v.unit = unit.value; });
      box.appendChild(el("div", { className: "onemap-pair" }, [level, unit]));
      var collection = this._collectionOf(g, v);
      if (collection) {
        this.units(collection).then(function (list) {
          if (self.values[g.key] !== v || v.level !== level.value) return;
          unit.textContent = "";
          unit.appendChild(el("option", { value: "", text: self.t("choose").replace("分析", "") }));
          list.forEach(function (u) {
            unit.appendChild(el("option", { value: String(u.id), text: u.name || "#" + u.id }));
          });
          unit.value = v.unit;
          unit.setAttribute("data-loading", "false");
          unit.setAttribute("data-count", String(list.length));
        });
      }
    } else if (g.parts.polygon) {
      var drawing = this.mode && this.mode.group === g.key;
      var n = (v.ring || []).length;
      var draw = el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-draw",
        "data-input": g.key, text: this.t("draw"),
        onclick: function () { v.ring = []; v.closed = false; self._setMode({ kind: "draw", group: g.key }); } });
      draw.disabled = !!drawing;
      box.appendChild(el("div", {}, [draw,
        el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-draw-finish",
          "data-input": g.key, text: this.t("finish"),
          onclick: function () { self._finishDrawing(); } }),
        el("button", { type: "button", className: "onemap-btn", text: this.t("redraw"),
          onclick: function () { v.ring = []; v.closed = false; self._setMode(null); self._drawInputs(); self.render(); } }),
      ]));
      box.appendChild(el("div", { className: "onemap-hint", testid: "onemap-analysis-vertices",
        "data-count": String(n), "data-closed": v.closed ? "true" : "false",
        text: (drawing ? this.t("drawing") + " — " : "") + n + " " + this.t("vertices") }));
    }
  };

  /* The collection an area's units come from: "{level}" stands for the chosen level. */
  Analysis.prototype._collectionOf = function (g, v) {
    var hint = g.parts.unit_id && g.parts.unit_id.hint;
    var template = (hint && hint.collection) || "{" + (g.parts.level ? g.parts.level.name : "level") + "}";
    var values = {};
    if (g.parts.level) values[g.parts.level.name] = v.level;
    var out = template.replace(/\{([a-z_]+)\}/g, function (m, name) { return values[name] || ""; });
    return /^[a-z][a-z0-9_]*$/.test(out) ? out : null;
  };

  /* Promise of a collection's features as the user may see them: [{id, name}] by name. */
  Analysis.prototype.units = function (collection) {
    var url = "/collections/" + encodeURIComponent(collection) + "/items?f=json&limit=1000";
    if (!this._lists[url]) {
      var self = this;
      this._lists[url] = this.request("GET", url).then(function (r) {
        if (!r.ok) delete self._lists[url];
        var feats = (r.ok && r.data && r.data.features) || [];
        return feats.map(function (f) {
          var p = f.properties || {};
          return { id: f.id, name: p.name || p.code || null };
        }).sort(function (a, b) { return String(a.name).localeCompare(String(b.name), "zh"); });
      });
    }
    return this._lists[url];
  };

  Analysis.prototype._idsControl = function (g, v, box) {
    var self = this;
    var el = this.el;
    var part = g.parts.value || g.parts[Object.keys(g.parts)[0]];
    var input = el("input", { type: "text", name: part.name, testid: "onemap-analysis-ids",
      "data-input": g.key, placeholder: this.t("ids") });
    input.value = v.ids;
    input.addEventListener("input", setter(v, "ids"));
    input.addEventListener("change", function () { self._lookUp(g, v); });
    var picking = this.mode && this.mode.group === g.key;
    box.appendChild(input);
    box.appendChild(el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-pick",
      "data-input": g.key, text: (picking ? this.t("picking") : this.t("choosePick")) +
        (g.collection ? " (" + this.w.title(g.collection) + ")" : ""),
      onclick: function () { self._setMode(picking ? null : { kind: "ids", group: g.key }); } }));
  };

  /* One feature of a collection (an integer input with "x-onemap-collection"): its id
   * typed, or the feature clicked on the map; the chosen one is outlined on the map and
   * named under the field. */
  Analysis.prototype._featureControl = function (g, v, box) {
    var self = this;
    var el = this.el;
    var part = g.parts.value || g.parts[Object.keys(g.parts)[0]];
    var schema = part.spec.schema || {};
    var input = el("input", { type: "number", step: "1", name: part.name, testid: "onemap-analysis-input",
      "data-name": part.name, placeholder: this.t("id") });
    if (schema.minimum !== undefined) input.min = String(schema.minimum);
    input.value = v.value;
    input.addEventListener("input", setter(v, "value"));
    input.addEventListener("change", function () { self._lookUp(g, v); });
    var picking = this.mode && this.mode.group === g.key;
    box.appendChild(el("div", { className: "onemap-pair" }, [input,
      el("button", { type: "button", className: "onemap-btn", testid: "onemap-analysis-pick",
        "data-input": g.key, text: (picking ? this.t("picking") : this.t("choosePick")) +
          (g.collection ? " (" + this.w.title(g.collection) + ")" : ""),
        onclick: function () { self._setMode(picking ? null : { kind: "feature", group: g.key }); } })]));
    var known = v.value !== "" && v.names ? v.names[String(v.value)] : undefined;
    if (known !== undefined) {
      box.appendChild(el("div", { className: "onemap-picked", testid: "onemap-analysis-picked",
        "data-input": g.key, "data-id": String(v.value), "data-found": known === null ? "false" : "true",
        text: this.t("picked") + (this.w.lang === "zh" ? "：" : ": ") +
          (g.collection ? this.w.title(g.collection) + " " : "") + "#" + v.value +
          (known ? " " + known : known === null ? " — " + this.t("notFound") : "") }));
    }
  };

  /* Promise of a feature's {geometry, name} (GET /collections/{c}/items/{id}), null when
   * absent or refused; cached per panel. */
  Analysis.prototype.feature = function (collection, id) {
    var url = "/collections/" + encodeURIComponent(collection) + "/items/" + encodeURIComponent(id) + "?f=json";
    if (!this._lists[url]) {
      var self = this;
      this._lists[url] = this.request("GET", url).then(function (r) {
        if (!r.ok || !r.data) {
          if (r.status !== 404) delete self._lists[url];  // a failure, not an answer: ask again
          return null;
        }
        var p = r.data.properties || {};
        return { geometry: r.data.geometry || null, name: p.name || p.code || p.address || "" };
      });
    }
    return this._lists[url];
  };

  /* The typed or picked ids of a feature or id-set group: their geometries (outlined on
   * the map) and names, from the collection. */
  Analysis.prototype._lookUp = function (g, v) {
    var self = this;
    if (!g.collection) return Promise.resolve();
    var ids = g.kind === "feature" ? [String(v.value)] : String(v.ids || "").split(/[\s,，]+/);
    ids = ids.filter(function (id) { return /^\d+$/.test(id); });
    v.geoms = v.geoms || {};
    v.names = v.names || {};
    this._drawInputs();
    return Promise.all(ids.map(function (id) {
      return self.feature(g.collection, id).then(function (f) {
        v.names[id] = f ? f.name : null;
        if (f && f.geometry) v.geoms[id] = f.geometry;
        else if (!f) delete v.geoms[id];
      });
    })).then(function () {
      if (self.values[g.key] !== v) return;
      self._drawInputs();
      if (self.isOpen) self.render();
    });
  };

  Analysis.prototype._scenarioControl = function (g, v, box) {
    var self = this;
    var el = this.el;
    var part = g.parts.value || g.parts[Object.keys(g.parts)[0]];
    var select = el("select", { name: part.name, testid: "onemap-analysis-scenario", "data-input": g.key });
    select.appendChild(el("option", { value: "", text: this.t("none") }));
    select.addEventListener("change", setter(v, "value"));
    box.appendChild(select);
    var path = g.list || "/scenarios";
    if (path.charAt(0) !== "/") return;
    this.request("GET", path + (path.indexOf("?") < 0 ? "?" : "&") + "f=json&limit=100").then(function (r) {
      var list = (r.ok && r.data && (r.data.scenarios || r.data.items)) || [];
      list.forEach(function (s) {
        select.appendChild(el("option", { value: String(s.id), text: s.name || String(s.id) }));
      });
      select.value = v.value || "";
    });
  };

  Analysis.prototype._windowControl = function (g, v, box) {
    var el = this.el;
    var part = g.parts.value || g.parts[Object.keys(g.parts)[0]];
    var props = (part.spec.schema && part.spec.schema.properties) || {};
    var kindOf = function (p) {
      var s = props[p] || {};
      var any = (s.anyOf || []).map(function (a) { return a.format; });
      return s.format === "date" && !any.length ? "date" : "datetime-local";
    };
    var start = el("input", { type: kindOf("start"), testid: "onemap-analysis-input",
      "data-name": part.name + ".start", title: this.t("start") });
    var end = el("input", { type: kindOf("end"), testid: "onemap-analysis-input",
      "data-name": part.name + ".end", title: this.t("end") });
    start.value = v.start; end.value = v.end;
    start.addEventListener("input", setter(v, "start"));
    end.addEventListener("input", setter(v, "end"));
    box.appendChild(el("div", { className: "onemap-pair" }, [
      el("label", {}, [this.t("start"), start]), el("label", {}, [this.t("end"), end])]));
  };

  /* ---- the map as an input: a point, a polygon's vertices, features of a collection ---- */

  Analysis.prototype._setMode = function (mode) {
    var self = this;
    var map = this.w.map;
    this.mode = mode;
    if (!map) return;
    map.getCanvas().style.cursor = mode ? "crosshair" : "";
    // clicks in a row add vertices or points: they must not zoom the map
    if (mode && (mode.kind === "draw" || mode.kind === "points")) map.doubleClickZoom.disable();
    else map.doubleClickZoom.enable();
    // the widget asks first on every click (onemap-widget.js _onClick)
    this.w._clickHook = mode ? function (e) { return self._mapClick(e); } : null;
    if (!this._dblHook) {
      this._dblHook = function (e) {
        if (self.mode && self.mode.kind === "draw") {
          e.preventDefault();
          self._finishDrawing();
        }
      };
      map.on("dblclick", this._dblHook);
    }
    if (this.isOpen) this.render();
  };

  Analysis.prototype._mapClick = function (e) {
    var mode = this.mode;
    if (!mode) return false;
    var v = this.values[mode.group];
    if (!v) return false;
    var at = [Number(e.lngLat.lng.toFixed(7)), Number(e.lngLat.lat.toFixed(7))];
    if (mode.kind === "point") {
      v.x = String(at[0]);
      v.y = String(at[1]);
      this._setMode(null);
    } else if (mode.kind === "points") {
      v.points = v.points || [];
      v.points.push(at);  // the mode stays on: the next click adds the next point
      this.render();
    } else if (mode.kind === "draw") {
      var last = v.ring[v.ring.length - 1];
      if (!last || last[0] !== at[0] || last[1] !== at[1]) v.ring.push(at);
      this.render();
    } else if (mode.kind === "ids" || mode.kind === "feature") {
      var g = this.groups.filter(function (x) { return x.key === mode.group; })[0];
      var hit = this.pickAt(e.point, g && g.collection);
      if (hit) {
        var id = String(hit.id);
        v.geoms = v.geoms || {};
        v.names = v.names || {};
        v.geoms[id] = hit.geometry;  // as drawn (maybe cut at a tile's edge) until the record comes
        if (mode.kind === "feature") {
          v.value = id;
          this._setMode(null);
        } else {
          var ids = String(v.ids || "").split(/[\s,，]+/).filter(Boolean);
          var at2 = ids.indexOf(id);
          if (at2 >= 0) ids.splice(at2, 1); else ids.push(id);
          v.ids = ids.join(",");
          this.render();
        }
        if (g) this._lookUp(g, v);
      }
    }
    this._drawInputs();
    return true;
  };

  /* The feature of `collection` drawn nearest to a pixel, within PICK_PX of it:
   * {id, geometry, distance} or null. A feature of the theme counts by its id; one of the
   * panel's results by its "<collection>_id" property (a valve of a plan: valve_id), so a
   * result drawn over the theme's layer can be clicked too. Without a collection, any
   * feature of the theme with an id. */
  Analysis.prototype.pickAt = function (point, collection) {
    var map = this.w.map;
    var r = PICK_PX;
    var box = [[point.x - r, point.y - r], [point.x + r, point.y + r]];
    var best = null;
    map.queryRenderedFeatures(box).forEach(function (f) {
      var id = null;
      var own = String(f.source || "").indexOf(PREFIX) === 0;
      if (f.source === INPUT_SOURCE) return;
      if (!own && f.id != null && (!collection || f.sourceLayer === collection)) id = f.id;
      else if (own && collection && f.properties && f.properties[collection + "_id"] != null) {
        id = f.properties[collection + "_id"];
      }
      if (id == null) return;
      var d = screenDistance(map, f.geometry, point);
      if (!best || d < best.distance) best = { id: id, geometry: f.geometry, distance: d };
    });
    return best;
  };

  /* Pixels from `point` to a GeoJSON geometry as drawn (0 inside a polygon). */
  function screenDistance(map, geometry, point) {
    var best = Infinity;
    var px = function (c) { var q = map.project(c); return [q.x, q.y]; };
    var seg = function (a, b) {
      var dx = b[0] - a[0], dy = b[1] - a[1];
      var len = dx * dx + dy * dy;
      var t = len ? Math.max(0, Math.min(1, ((point.x - a[0]) * dx + (point.y - a[1]) * dy) / len)) : 0;
      var x = a[0] + t * dx - point.x, y = a[1] + t * dy - point.y;
      return Math.sqrt(x * x + y * y);
    };
    var line = function (coords) {
      var pts = coords.map(px);
      if (pts.length === 1) best = Math.min(best, seg(pts[0], pts[0]));
      for (var i = 1; i < pts.length; i++) best = Math.min(best, seg(pts[i - 1], pts[i]));
      return pts;
    };
    var inside = function (pts) {
      var c = false;
      for (var i = 0, j = pts.length - 1; i < pts.length; j = i++) {
        if ((pts[i][1] > point.y) !== (pts[j][1] > point.y) &&
          point.x < (pts[j][0] - pts[i][0]) * (point.y - pts[i][1]) / (pts[j][1] - pts[i][1]) + pts[i][0]) c = !c;
      }
      return c;
    };
    var polygon = function (rings) {
      var outer = line(rings[0] || []);
      if (outer.length > 2 && inside(outer)) best = 0;
      rings.slice(1).forEach(line);
    };
    var g = geometry || {};
    var c = g.coordinates || [];
    if (g.type === "Point") line([c]);
    else if (g.type === "MultiPoint" || g.type === "LineString") {
      if (g.type === "LineString") line(c); else c.forEach(function (p) { line([p]); });
    } else if (g.type === "MultiLineString") c.forEach(line);
    else if (g.type === "Polygon") polygon(c);
    else if (g.type === "MultiPolygon") c.forEach(polygon);
    return best;
  }

  Analysis.prototype._finishDrawing = function () {
    var mode = this.mode;
    if (!mode || mode.kind !== "draw") return false;
    var v = this.values[mode.group];
    // a double-click's two clicks are one vertex
    v.ring = v.ring.filter(function (p, i, all) {
      var q = all[i - 1];
      return !q || Math.abs(p[0] - q[0]) > 1e-7 || Math.abs(p[1] - q[1]) > 1e-7;
    });
    v.closed = v.ring.length >= 3;
    this._setMode(null);
    this._drawInputs();
    return v.closed;
  };

  /* The numbered markers of the points inputs (kind "points"), made again from the form. */
  Analysis.prototype._drawPointMarkers = function () {
    var map = this.w.map;
    var self = this;
    (this._markers || []).forEach(function (m) { m.remove(); });
    this._markers = [];
    if (!map || !window.maplibregl) return;
    this.groups.forEach(function (g) {
      var v = self.values[g.key] || {};
      if (g.kind !== "points") return;
      (v.points || []).forEach(function (p, i) {
        var dot = self.el("div", { className: "onemap-point-marker", testid: "onemap-analysis-point-marker",
          "data-input": g.key, "data-index": String(i + 1), text: String(i + 1) });
        dot.title = (i + 1) + ": " + p[0].toFixed(6) + ", " + p[1].toFixed(6);
        self._markers.push(new window.maplibregl.Marker({ element: dot }).setLngLat(p).addTo(map));
      });
    });
  };

  /* The point and polygon the form holds, drawn on the map. */
  Analysis.prototype._drawInputs = function () {
    var map = this.w.map;
    if (!map) return;
    var feats = [];
    var self = this;
    this._drawPointMarkers();
    this.groups.forEach(function (g) {
      var v = self.values[g.key] || {};
      if (g.kind === "point" && v.x !== "" && v.y !== "" && isFinite(v.x) && isFinite(v.y)) {
        feats.push({ type: "Feature", properties: { kind: "point" },
          geometry: { type: "Point", coordinates: [Number(v.x), Number(v.y)] } });
      }
      if (g.kind === "area" && v.mode === "polygon" && v.ring && v.ring.length) {
        var ring = v.ring.slice();
        if (ring.length >= 3) {
          feats.push({ type: "Feature", properties: { kind: "area" },
            geometry: { type: "Polygon", coordinates: [ring.concat([ring[0]])] } });
        } else if (ring.length === 2) {
          feats.push({ type: "Feature", properties: { kind: "area" },
            geometry: { type: "LineString", coordinates: ring } });
        }
        ring.forEach(function (p) {
          feats.push({ type: "Feature", properties: { kind: "vertex" },
            geometry: { type: "Point", coordinates: p } });
        });
      }
      // the feature picked (or typed) for a feature input, the features of an id set
      var picked = g.kind === "feature" ? [String(v.value)] : g.kind === "id-set" ?
        String(v.ids || "").split(/[\s,，]+/) : [];
      picked.forEach(function (id) {
        var geom = v.geoms && v.geoms[id];
        if (geom) feats.push({ type: "Feature", properties: { kind: "feature", group: g.key, id: id },
          geometry: geom });
      });
    });
    var data = { type: "FeatureCollection", features: feats };
    var src = map.getSource(INPUT_SOURCE);
    if (src) { src.setData(data); return; }
    map.addSource(INPUT_SOURCE, { type: "geojson", data: data });
    var mine = ["!=", ["get", "kind"], "feature"];
    var points = ["in", ["geometry-type"], ["literal", ["Point", "MultiPoint"]]];
    map.addLayer({ id: INPUT_SOURCE + "-fill", type: "fill", source: INPUT_SOURCE,
      filter: ["all", mine, ["==", ["geometry-type"], "Polygon"]],
      paint: { "fill-color": "#7c3aed", "fill-opacity": 0.15 } });
    map.addLayer({ id: INPUT_SOURCE + "-line", type: "line", source: INPUT_SOURCE,
      filter: ["all", mine, ["!", points]],
      paint: { "line-color": "#7c3aed", "line-width": 2, "line-dasharray": [2, 1] } });
    map.addLayer({ id: INPUT_SOURCE + "-point", type: "circle", source: INPUT_SOURCE,
      filter: ["all", mine, points],
      paint: { "circle-radius": ["case", ["==", ["get", "kind"], "vertex"], 4, 8],
        "circle-color": "#7c3aed", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
    // a picked feature: a broad translucent band along a line or outline, a ring round a point
    map.addLayer({ id: INPUT_SOURCE + "-feature-line", type: "line", source: INPUT_SOURCE,
      filter: ["all", ["!", mine], ["!", points]],
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": PICKED_COLOUR, "line-width": 9, "line-opacity": 0.45 } });
    map.addLayer({ id: INPUT_SOURCE + "-feature-point", type: "circle", source: INPUT_SOURCE,
      filter: ["all", ["!", mine], points],
      paint: { "circle-radius": 11, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": PICKED_COLOUR,
        "circle-stroke-width": 3 } });
  };

  /* ---- the request ---- */

  /* The execute request's inputs from the form: {inputs} or {error}. */
  Analysis.prototype.inputs = function () {
    var self = this;
    var out = {};
    var error = null;
    this.groups.forEach(function (g) {
      var v = self.values[g.key] || {};
      var p = g.parts;
      if (g.kind === "point") {
        if (v.x === "" && v.y === "") return;
        out[p.x.name] = Number(v.x);
        out[p.y.name] = Number(v.y);
        if (p.crs) out[p.crs.name] = CRS;
      } else if (g.kind === "points") {
        if (!p.points || !v.points || !v.points.length) return;
        out[p.points.name] = { type: "MultiPoint",
          coordinates: v.points.map(function (q) { return [q[0], q[1]]; }) };
        if (p.crs) out[p.crs.name] = CRS;
      } else if (g.kind === "area") {
        if (v.mode === "unit" && p.level) {
          out[p.level.name] = v.level;
          if (p.unit_id && v.unit !== "") out[p.unit_id.name] = Number(v.unit);
        } else if (p.polygon && v.ring && v.ring.length) {
          out[p.polygon.name] = { type: "Polygon",
            coordinates: [v.ring.concat([v.ring[0]])] };
          if (p.crs) out[p.crs.name] = CRS;
        }
      } else if (g.kind === "id-set") {
        var ids = String(v.ids || "").split(/[\s,，]+/).filter(Boolean);
        if (ids.length) out[(p.value || p[Object.keys(p)[0]]).name] = ids.map(function (s) {
          return /^\d+$/.test(s) ? Number(s) : s;
        });
      } else if (g.kind === "time-window") {
        if (v.start || v.end) out[(p.value || p[Object.keys(p)[0]]).name] = { start: v.start, end: v.end };
      } else {
        var part = p.value || p[Object.keys(p)[0]];
        var schema = part.spec.schema || {};
        if (g.kind === "boolean") { out[part.name] = !!v.value; return; }
        if (v.value === "" || v.value === undefined || v.value === null) return;
        if (g.kind === "number" || g.kind === "feature") out[part.name] = Number(v.value);
        else if (g.kind === "json") {
          try { out[part.name] = JSON.parse(v.value); } catch (e) {
            error = error || { status: 0, message: part.name + ": JSON — " + e.message, inputs: [part.name] };
          }
        } else if (g.kind === "date" && schema.format === "date-time" && v.value.length === 16) {
          // a datetime-local field is the city's time: say so (RFC 3339 needs an offset)
          out[part.name] = v.value + ":00+08:00";
        } else out[part.name] = v.value;
      }
    });
    return error ? { error: error } : { inputs: out };
  };

  /* Run the chosen process with the form's inputs; Promise of the job (or request) state. */
  Analysis.prototype.run = function () {
    var self = this;
    var proc = this.process;
    if (!proc) return Promise.resolve(null);
    var built = this.inputs();
    this.error = null;
    if (built.error) {
      this.error = built.error;
      this.render();
      return Promise.resolve(null);
    }
    var async = (proc.jobControlOptions || []).indexOf("async-execute") >= 0;
    var headers = async ? { Prefer: "respond-async" } : {};
    this.job = { id: null, status: "accepted", progress: 0, message: null, log: [] };
    var job = this.job;
    this._logJob(job);
    this.render();
    var path = "/processes/" + encodeURIComponent(proc.id) + "/execution?lang=" + this.w.lang;
    // a results document: every output by id, with its media type
    var body = { inputs: built.inputs, response: "document" };
    return this.request("POST", path, body, headers).then(function (r) {
      if (self.job !== job) return job;
      if (!r.ok) {
        job.status = "refused";
        self.job = null;
        var message = (r.data && (r.data.description || r.data.detail)) || self.t("error") + " " + r.status;
        var names = [];
        self.groups.forEach(function (g) { names = names.concat(g.names); });
        self.error = { status: r.status, message: message, inputs: namedInputs(message, names) };
        self.render();
        return self.error;
      }
      self.clearResults();  // accepted: the earlier results give way
      if (r.data && r.data.jobID && r.status === 201) {
        job.id = r.data.jobID;
        job.status = r.data.status || "accepted";
        self._logJob(job);
        self.render();
        return self._poll(job);
      }
      // answered at once (a process that runs synchronously only): the results document
      job.status = "successful";
      job.progress = 100;
      self._logJob(job);
      return self._showResults(null, r.data).then(function () { return job; });
    });
  };

  Analysis.prototype._logJob = function (job) {
    var last = job.log[job.log.length - 1];
    var entry = { status: job.status, progress: job.progress, message: job.message };
    if (!last || last.status !== entry.status || last.progress !== entry.progress ||
      last.message !== entry.message) job.log.push(entry);
  };

  /* GET /jobs/{id} until it ends; then its results. */
  Analysis.prototype._poll = function (job) {
    var self = this;
    return new Promise(function (resolve) {
      function step() {
        if (self.job !== job) { resolve(job); return; }
        self.request("GET", "/jobs/" + encodeURIComponent(job.id) + "?f=json").then(function (r) {
          if (self.job !== job) { resolve(job); return; }
          if (r.ok && r.data) {
            job.status = r.data.status || job.status;
            job.progress = r.data.progress != null ? r.data.progress : job.progress;
            job.message = r.data.message || null;
            self._logJob(job);
            self.renderStatus();
          } else if (r.status === 404) {
            job.status = "dismissed";  // gone (cancelled elsewhere)
          }
          if (ENDED[job.status]) {
            self.renderStatus();
            if (job.status === "successful") {
              self._showResults(job.id).then(function () { resolve(job); });
            } else resolve(job);
            return;
          }
          setTimeout(step, 400);
        });
      }
      step();
    });
  };

  /* Cancel the running job (DELETE /jobs/{id}); Promise of its state. */
  Analysis.prototype.cancel = function () {
    var self = this;
    var job = this.job;
    if (!job || !job.id || ENDED[job.status]) return Promise.resolve(job);
    return this.request("DELETE", "/jobs/" + encodeURIComponent(job.id) + "?f=json").then(function (r) {
      if (r.ok && r.data && r.data.status) job.status = r.data.status;
      else if (r.ok || r.status === 404) job.status = "dismissed";
      self._logJob(job);
      self.renderStatus();
      return job;
    });
  };

  Analysis.prototype._renderProgress = function () {
    var el = this.el;
    var box = this.ui.progress;
    var job = this.job;
    box.textContent = "";
    if (!job) { box.removeAttribute("data-status"); return; }
    box.setAttribute("data-status", job.status);
    box.setAttribute("data-progress", String(job.progress || 0));
    var bar = el("progress", { max: "100" });
    bar.value = job.progress || 0;
    var stage = job.message && !ENDED[job.status] ? inLang(job.message, this.w.lang) : "";
    box.appendChild(bar);
    box.appendChild(el("div", { testid: "onemap-analysis-stage",
      text: this.t(job.status) + (stage ? " — " + stage : "") + " " + (job.progress || 0) + "%" }));
    if (job.status === "failed" && job.message) {
      box.appendChild(el("div", { className: "onemap-analysis-error", text: inLang(job.message, this.w.lang) }));
    }
  };

  /* ---- results ---- */

  /* Draw a finished job's results: the summary as a table, the feature outputs as layers. */
  Analysis.prototype._showResults = function (jobId, document_) {
    var self = this;
    var proc = this.process;
    var got = document_ ? Promise.resolve({ ok: true, data: document_ }) :
      this.request("GET", "/jobs/" + encodeURIComponent(jobId) + "/results?f=json");
    return got.then(function (r) {
      var doc = r.ok && r.data ? r.data : {};
      var outputs = (proc && proc.outputs) || {};
      var ids = Object.keys(outputs);
      // a server answering one output raw: that output's value
      if (ids.length === 1 && !Object.prototype.hasOwnProperty.call(doc, ids[0])) {
        var one = {};
        one[ids[0]] = doc;
        doc = one;
      }
      var results = { jobId: jobId, process: proc ? proc.id : null, document: doc, summary: null,
        tables: [], layers: [] };
      self.results = results;
      var jobs = [];
      Object.keys(doc).forEach(function (id) {
        var value = doc[id] && doc[id].value !== undefined && doc[id].mediaType ? doc[id].value : doc[id];
        var schema = (outputs[id] && outputs[id].schema) || {};
        var isFeatures = schema.format === "geojson-feature-collection" ||
          schema.contentMediaType === "application/geo+json" ||
          (value && value.type === "FeatureCollection");
        if (isFeatures) {
          if (jobId) jobs.push(self._layerOf(jobId, id, outputs[id], value));
        } else if (value && Array.isArray(value.columns) && Array.isArray(value.rows)) {
          results.tables.push({ output: id, title: outputs[id] && outputs[id].title, table: value });
        } else if (value && typeof value === "object" && !results.summary) {
          results.summary = { output: id, title: outputs[id] && outputs[id].title, value: value,
            order: Object.keys(schema.properties || {}), schema: schema.properties || {} };
        }
      });
      self.renderStatus();
      return Promise.all(jobs).then(function (layers) {
        if (self.results !== results) return results;
        // in the order the process declares its outputs
        layers = layers.filter(Boolean).sort(function (a, b) {
          return ids.indexOf(a.entry.output) - ids.indexOf(b.entry.output);
        });
        self._drawResults(results, layers);
        self.renderStatus();
        return results;
      });
    });
  };

  /* Promise of one feature output's layer, not yet on the map: {entry, style} with its
   * style (tiles, paint, legend) drawn by class when its features carry a coded property. */
  Analysis.prototype._layerOf = function (jobId, output, described, value) {
    var self = this;
    var base = "/jobs/" + encodeURIComponent(jobId) + "/results/" + encodeURIComponent(output);
    var count = value && Array.isArray(value.features) ? value.features.length : null;
    return Promise.all([this.request("GET", base + "/style?f=json"),
      this.request("GET", base + "/tiles/WebMercatorQuad?f=json")]).then(function (res) {
      var style = res[0].ok && res[0].data ? res[0].data : null;
      var entry = { output: output, title: (described && described.title) || output, count: count,
        sources: [], layers: [], legend: [], classBy: null,
        bounds: res[1].ok && res[1].data ? res[1].data.bounds : null };
      if (!style) return { entry: entry, style: null };
      var prefix = PREFIX + "-" + String(jobId).slice(0, 8) + "-";
      var layers = (style.layers || []).map(function (l) {
        var layer = JSON.parse(JSON.stringify(l));
        layer.id = prefix + l.id;
        if (layer.source) layer.source = prefix + layer.source;
        return layer;
      });
      var legend = ((style.metadata && style.metadata.legend) || []).map(function (e) {
        return { layer: prefix + e.layer, kind: e.kind, title: e.title, colour: e.colour,
          property: e.property || null, range: e.range || null };
      });
      var cls = count !== 0 ? classOf(described) : null;  // an empty output: its one entry says so
      if (cls) {
        var drawn = byClass(layers, legend, cls, (value && value.features) || []);
        layers = drawn.layers;
        legend = drawn.legend;
        entry.classBy = cls.property;
      }
      entry.legend = legend;
      var sources = {};
      Object.keys(style.sources || {}).forEach(function (sid) {
        var src = JSON.parse(JSON.stringify(style.sources[sid]));
        if (src.url && src.url.indexOf("http") !== 0) src.url = self.w.base + src.url;
        sources[prefix + sid] = src;
      });
      return { entry: entry, style: { sources: sources, layers: layers } };
    });
  };

  /* Put the results' layers on the map — areas under lines under points, whatever the
   * order their styles came in — and fit the map to all of them. */
  Analysis.prototype._drawResults = function (results, layers) {
    var map = this.w.map;
    if (!map) return;
    var RANK = { fill: 0, line: 1 };
    var all = [];
    layers.forEach(function (x) {
      results.layers.push(x.entry);
      if (!x.style) return;
      Object.keys(x.style.sources).forEach(function (sid) {
        map.addSource(sid, x.style.sources[sid]);
        x.entry.sources.push(sid);
      });
      x.style.layers.forEach(function (l, i) { all.push({ layer: l, entry: x.entry, at: all.length + i }); });
    });
    all.sort(function (a, b) {
      var ra = RANK[a.layer.type] !== undefined ? RANK[a.layer.type] : 2;
      var rb = RANK[b.layer.type] !== undefined ? RANK[b.layer.type] : 2;
      return ra - rb || a.at - b.at;
    });
    all.forEach(function (x) {
      // under the form's own drawing, above the theme
      map.addLayer(x.layer, map.getLayer(INPUT_SOURCE + "-fill") ? INPUT_SOURCE + "-fill" : undefined);
      x.entry.layers.push(x.layer.id);
    });
    var box = null;
    results.layers.forEach(function (entry) {
      var b = entry.bounds;
      if (!Array.isArray(b) || b.length !== 4 || !(b[0] <= b[2])) return;
      box = box ? [Math.min(box[0], b[0]), Math.min(box[1], b[1]), Math.max(box[2], b[2]),
        Math.max(box[3], b[3])] : b.slice();
    });
    if (box) map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 40, maxZoom: 17, duration: 0 });
  };

  /* The feature properties an output declares (name → schema), {} for others. */
  function featureProperties(described) {
    var s = described && described.schema;
    var path = ["properties", "features", "items", "properties", "properties", "properties"];
    for (var i = 0; s && i < path.length; i++) s = s[path[i]];
    return s && typeof s === "object" ? s : {};
  }

  /* The property an output's features are drawn by class of: the first string property
   * with 2–8 enum values (valves: action close | stuck), else the first boolean one
   * (pipes: fallback); null when none. From the output's declared schema alone: no
   * process is named here. */
  function classOf(described) {
    var props = featureProperties(described);
    var names = Object.keys(props);
    var i, s;
    for (i = 0; i < names.length; i++) {
      s = props[names[i]] || {};
      if (Array.isArray(s.enum) && s.enum.length >= 2 && s.enum.length <= CLASS_COLOURS.length &&
        (s.type === "string" || s.type === undefined)) {
        return { property: names[i], kind: "enum", values: s.enum.map(String) };
      }
    }
    for (i = 0; i < names.length; i++) {
      s = props[names[i]] || {};
      if (s.type === "boolean") return { property: names[i], kind: "flag", values: ["false", "true"] };
    }
    return null;
  }

  /* A style's layers and legend redrawn by class of `cls.property` (data-driven paint,
   * matched on the value as text: tiles carry booleans as booleans, GeoJSON too):
   *   - an enum: points and lines coloured per value, an area's outline per value;
   *   - a boolean: its true drawn apart — a line dashed magenta in a layer of its own, a
   *     point red, an area's outline magenta.
   * A colour ramp the server put on a point or line (its colour_by) becomes its size, so
   * that both stay readable; on an area it stays the fill. One legend entry per class
   * met, with its feature count. */
  function byClass(layers, legend, cls, features) {
    var key = ["to-string", ["get", cls.property]];
    var counts = {};
    cls.values.forEach(function (v) { counts[v] = 0; });
    features.forEach(function (f) {
      var v = String((f.properties || {})[cls.property]);
      if (cls.kind === "flag") v = v === "true" ? "true" : "false";
      if (Object.prototype.hasOwnProperty.call(counts, v)) counts[v] += 1;
    });
    var colourOf = function (v, i, base) {
      if (cls.kind === "enum") return CLASS_COLOURS[i];
      return v === "true" ? base : null;
    };
    var paintBy = function (base) {
      if (cls.kind === "enum") {
        var m = ["match", key];
        cls.values.forEach(function (v, i) { m.push(v, CLASS_COLOURS[i]); });
        m.push(OTHER_COLOUR);
        return m;
      }
      return ["match", key, "true", FLAG_COLOUR, base];
    };
    var ramp = legend.filter(function (e) { return Array.isArray(e.colour) && e.range; })[0] || null;
    var plain = legend.filter(function (e) { return !Array.isArray(e.colour); })[0] || null;
    var out = [];
    var entries = [];
    var classEntries = function (layerId, kind, flagColour, base) {
      cls.values.forEach(function (v, i) {
        if (features.length && !counts[v]) return;  // a class no feature has: nothing to find on the map
        if (cls.kind === "flag" && v === "false") {
          entries.push({ layer: layerId.normal, kind: kind, title: (plain || ramp || {}).title,
            colour: base, value: v, property: cls.property, count: features.length ? counts[v] : null });
          return;
        }
        entries.push({ layer: cls.kind === "flag" ? layerId.flag : layerId.normal, kind: kind,
          title: (plain || ramp || {}).title, colour: colourOf(v, i, flagColour), value: v,
          property: cls.property, count: features.length ? counts[v] : null,
          dashed: cls.kind === "flag" && kind === "line" });
      });
    };
    layers.forEach(function (l) {
      var paint = l.paint || {};
      if (l.type === "circle") {
        var baseC = typeof paint["circle-color"] === "string" ? paint["circle-color"] : OTHER_COLOUR;
        if (Array.isArray(paint["circle-color"]) && ramp) {
          paint["circle-radius"] = ["interpolate", ["linear"], ["to-number", ["get", ramp.property], ramp.range[0]],
            ramp.range[0], 5, Math.max(ramp.range[1], ramp.range[0] + 1), 10];
          entries.push({ layer: l.id, kind: "size", title: ramp.title, property: ramp.property, range: ramp.range });
        } else paint["circle-radius"] = 6;
        paint["circle-color"] = cls.kind === "enum" ? paintBy() : ["match", key, "true", FLAG_POINT, baseC];
        paint["circle-stroke-width"] = 1.5;
        classEntries({ normal: l.id, flag: l.id }, "circle", FLAG_POINT, baseC);
        out.push(l);
      } else if (l.type === "line" && !/-outline$/.test(l.id)) {
        var baseL = typeof paint["line-color"] === "string" ? paint["line-color"] : OTHER_COLOUR;
        if (Array.isArray(paint["line-color"]) && ramp) {
          paint["line-width"] = ["interpolate", ["linear"], ["to-number", ["get", ramp.property], ramp.range[0]],
            ramp.range[0], 1.5, Math.max(ramp.range[1], ramp.range[0] + 1), 6];
          entries.push({ layer: l.id, kind: "size", title: ramp.title, property: ramp.property, range: ramp.range });
        }
        if (cls.kind === "enum") {
          paint["line-color"] = paintBy();
          classEntries({ normal: l.id }, "line", null, baseL);
          out.push(l);
        } else {
          // a layer of its own for the flagged lines: dashed, drawn over the others
          paint["line-color"] = baseL;
          l.filter = ["!=", key, "true"];
          var flagged = JSON.parse(JSON.stringify(l));
          flagged.id = l.id + "-" + cls.property;
          flagged.filter = ["==", key, "true"];
          flagged.paint["line-color"] = FLAG_COLOUR;
          flagged.paint["line-dasharray"] = [2, 1.5];
          if (!Array.isArray(flagged.paint["line-width"])) flagged.paint["line-width"] = 3;
          classEntries({ normal: l.id, flag: flagged.id }, "line", FLAG_COLOUR, baseL);
          out.push(l, flagged);
        }
      } else if (l.type === "line") {  // an area's outline
        var baseO = typeof paint["line-color"] === "string" ? paint["line-color"] : OTHER_COLOUR;
        paint["line-color"] = paintBy(baseO);
        paint["line-width"] = 2.5;
        classEntries({ normal: l.id, flag: l.id }, "line", FLAG_COLOUR, baseO);
        out.push(l);
      } else out.push(l);
      l.paint = paint;
    });
    // an area keeps its fill's entry (one colour or the ramp); points and lines have theirs per class
    var kept = legend.filter(function (e) { return e.kind === "fill"; });
    return { layers: out, legend: kept.concat(entries) };
  }

  /* Remove the results' layers, summary and legend. */
  Analysis.prototype.clearResults = function () {
    var map = this.w.map;
    var results = this.results;
    this.results = null;
    if (results && map) {
      results.layers.forEach(function (entry) {
        entry.layers.forEach(function (id) { if (map.getLayer(id)) map.removeLayer(id); });
        entry.sources.forEach(function (id) { if (map.getSource(id)) map.removeSource(id); });
      });
    }
    if (this.isOpen) this.renderStatus();
  };

  /* A summary value for a table cell: a unit by its name, counts summed, lists counted;
   * an object's members in the order its schema declares them (the server's JSON may
   * sort them). */
  Analysis.prototype._cell = function (v, schema) {
    var self = this;
    if (v === null || v === undefined) return "—";
    if (typeof v === "boolean") return this.t(v ? "yes" : "no");
    if (typeof v === "number") return String(Math.round(v * 100) / 100);
    if (typeof v === "string") return /^\d{4}-\d\d-\d\dT/.test(v) ? this.w.formatTime(v) : v;
    if (Array.isArray(v)) {
      // a short list of codes the widget has words for (the streams planned): the words
      if (v.length && v.length <= 8 && v.every(function (x) {
        return typeof x === "string" && self._word(x) !== x;
      })) {
        return v.map(function (x) { return self._word(x); }).join("，");
      }
      return v.length + " " + this.t("items");
    }
    if (v.type === "Point" && Array.isArray(v.coordinates)) {
      return v.coordinates.map(function (c) { return c.toFixed(6); }).join(", ");
    }
    var name = v.name || v.address || v.room_no;
    if (name) return String(name);
    var declared = Object.keys((schema && schema.properties) || {});
    var keys = declared.filter(function (k) { return k in v; }).concat(
      Object.keys(v).filter(function (k) { return declared.indexOf(k) < 0; }));
    if (keys.length && keys.every(function (k) { return typeof v[k] === "number"; })) {
      return keys.map(function (k) { return self.t(k) + " " + self._cell(v[k]); }).join("，");
    }
    if (keys.length && keys.every(function (k) { return Array.isArray(v[k]); })) {
      return keys.map(function (k) { return self.t(k) + " " + v[k].length; }).join("，");
    }
    // parts with figures of their own (a plan's streams): the parts, named
    if (keys.length && keys.every(function (k) { return v[k] && typeof v[k] === "object"; })) {
      return keys.map(function (k) { return self._word(k); }).join("，");
    }
    return JSON.stringify(v).slice(0, 120);
  };

  Analysis.prototype._renderResults = function () {
    var self = this;
    var el = this.el;
    var box = this.ui.results;
    var lang = this.w.lang;
    var r = this.results;
    box.textContent = "";
    if (!r) return;
    box.appendChild(el("h4", {}, [this.t("results") + " ",
      el("button", { className: "onemap-btn", testid: "onemap-analysis-clear", text: this.t("clear"),
        onclick: function () { self.clearResults(); } })]));
    if (r.summary) {
      var table = el("table", { className: "onemap-kv", testid: "onemap-analysis-summary",
        "data-output": r.summary.output });
      // in the order the output declares its properties, then any others
      var keys = r.summary.order.filter(function (k) { return k in r.summary.value; });
      Object.keys(r.summary.value).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
      keys.forEach(function (k) {
        if (k === "children" || k === "crs") return;
        var value = r.summary.value[k];
        var coded = r.summary.schema && r.summary.schema[k] && Array.isArray(r.summary.schema[k].enum);
        table.appendChild(el("tr", { "data-key": k }, [el("td", { text: self.t(k) }),
          el("td", { text: coded && typeof value === "string" ? self._word(value) :
            self._cell(value, r.summary.schema && r.summary.schema[k]) })]));
      });
      box.appendChild(el("div", { className: "onemap-hint", text: r.summary.title || self.t("summary") }));
      box.appendChild(table);
    }
    r.tables.forEach(function (t) {
      var table = el("table", { className: "onemap-kv", testid: "onemap-analysis-table", "data-output": t.output });
      table.appendChild(el("tr", {}, t.table.columns.map(function (c) { return el("th", { text: c }); })));
      t.table.rows.slice(0, 20).forEach(function (row) {
        table.appendChild(el("tr", {}, row.map(function (c) { return el("td", { text: self._cell(c) }); })));
      });
      box.appendChild(el("div", { className: "onemap-hint", text: t.title || t.output }));
      box.appendChild(table);
    });
    if (r.layers.length) {
      var legend = el("div", { testid: "onemap-analysis-legend" }, [el("b", { text: this.t("legend") })]);
      r.layers.forEach(function (entry) {
        entry.legend.forEach(function (e) {
          var title = e.title && typeof e.title === "object" ? (e.title[lang] || e.title.en || entry.output) :
            (e.title || entry.title || entry.output);
          var sw;
          var extra = "";
          var count = entry.count;
          var attrs = { testid: "onemap-analysis-legend-entry", "data-output": entry.output,
            "data-layer": e.layer };
          if (e.value !== undefined) {
            // one class of the output's features: its value, or its boolean's yes/no
            attrs["data-property"] = e.property;
            attrs["data-value"] = e.value;
            if (e.count != null) attrs["data-count"] = String(e.count);
            extra = " · " + (e.value === "true" || e.value === "false" ?
              self._word(e.property) + (lang === "zh" ? "：" : ": ") + self.t(e.value === "true" ? "yes" : "no") :
              self._word(e.value));
            count = e.count;
          }
          if (e.kind === "size") {
            sw = el("span", { className: "onemap-swatch" });
            sw.style.borderRadius = "50%";
            sw.style.background = "#fff";
            extra = " · " + self.t("size") + (lang === "zh" ? "：" : ": ") + self._word(e.property) + " " +
              self._cell(e.range[0]) + " – " + self._cell(e.range[1]);
            attrs["data-property"] = e.property;
            count = null;
          } else if (Array.isArray(e.colour)) {
            sw = el("span", { className: "onemap-ramp" });
            sw.style.background = "linear-gradient(to right," + e.colour.join(",") + ")";
            if (e.property && e.range) {
              extra = " (" + self.w.t(e.property) + " " + self._cell(e.range[0]) + " – " +
                self._cell(e.range[1]) + ")";
            }
          } else {
            sw = el("span", { className: "onemap-swatch" });
            sw.style.background = e.kind === "line" ? "transparent" : e.colour;
            sw.style.borderColor = e.colour;
            if (e.kind === "line") sw.style.borderWidth = "0 0 3px 0";
            if (e.kind === "line" && e.dashed) sw.style.borderBottomStyle = "dashed";
            if (e.kind === "circle") sw.style.borderRadius = "50%";
          }
          legend.appendChild(el("div", attrs, [sw, title + extra + (count != null ? " — " + count +
              " " + self.t("features") : "")]));
        });
      });
      box.appendChild(legend);
    }
  };

  /* The widget's language changed: the list, the form and the results in it. */
  Analysis.prototype.relabel = function () {
    if (!this.isOpen && !this.processes) return;
    this.render();
    this.listProcesses();
    if (this.chosen) this.choose(this.chosen);
  };

  Analysis.groupsOf = groupsOf;
  Analysis.inLang = inLang;
  window.onemapAnalysis = Analysis;
})();
