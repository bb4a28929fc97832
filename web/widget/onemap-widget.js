/*
 * onemap staff-console map widget (城市运行"一张图" 地图组件). No build step.
 *
 *   <script src="{base}/widget/onemap-widget.js"></script>
 *   <div data-onemap-theme="lighting" data-onemap-base="http://host:8000"
 *        data-onemap-token="..." data-onemap-lang="zh" style="height:600px"></div>
 *
 * Attributes: data-onemap-theme (style id, default grid_management), data-onemap-base
 * (server, default: where this script came from), data-onemap-token (Authorization:
 * Bearer) or data-onemap-key (X-API-Key), data-onemap-lang (zh|en), data-onemap-style
 * ("auto": GET /styles/{theme}, falling back to a plain style over the theme's TileJSON
 * when the server has no such style; "tilejson": always the plain style),
 * data-onemap-center ("lon,lat"), data-onemap-zoom.
 *
 * For tests: window.onemap = {widgets: [Widget...], init(), ready}; a widget has .map
 * (MapLibre), .ready (Promise), .setLayerVisible(styleLayerId, bool), .drill(level, id)
 * → Promise of the panel state, .search(q) → Promise of hits, .setLang(lang),
 * .setTime(isoIntervalOrNull), .viewStats() → Promise, .showRecord(collection, id),
 * .loadFieldTitles(collection, lang) → Promise of {property → title}.
 * Elements carry data-testid="onemap-…" (see web/widget/README.md).
 */
(function () {
  "use strict";
  if (window.onemap && window.onemap.__loaded) {
    window.onemap.init();
    return;
  }

  var SCRIPT = document.currentScript;
  var SCRIPT_BASE = SCRIPT && SCRIPT.src ? SCRIPT.src.replace(/\/widget\/[^/]*$/, "") : "";

  var TEXT = {
    zh: {
      layers: "图层", legend: "图例", search: "搜索地址、楼栋、户号、街巷", searching: "搜索中…",
      noHits: "无结果", drill: "下钻", stats: "统计", viewStats: "当前视图统计",
      households: "户数", occupied: "实住户", residents: "居民", elderly: "老年人",
      events: "事件", rendered: "视图内要素", time: "时间", live: "实时（默认）",
      window: "时间窗", hoursAgo: "小时前", record: "记录", close: "关闭",
      denied: "无权查看名称，仅显示数量", none: "无", masked: "（已脱敏）", nullValue: "（空）",
      back: "返回", loading: "加载中…", error: "出错", zoomIn: "放大后显示统计",
      street_office: "街道", community: "社区", grid: "网格", compound: "小区",
      building: "楼栋", unit: "单元", household: "户", resident: "居民",
      address: "地址", alley: "街巷", lang: "EN", count: "数量", openDrill: "查看下钻",
      hour: "1 小时", day: "1 天", week: "7 天", children: "下级",
    },
    en: {
      layers: "Layers", legend: "Legend", search: "Search address, building, room, alley",
      searching: "Searching…", noHits: "No results", drill: "Drill-down", stats: "Statistics",
      viewStats: "Statistics of this view", households: "Households", occupied: "Occupied",
      residents: "Residents", elderly: "Elderly", events: "Events", rendered: "Features in view",
      time: "Time", live: "Live (default)", window: "Window", hoursAgo: "hours ago",
      record: "Record", close: "Close", denied: "Names not shown (no access): counts only",
      none: "None", masked: "(masked)", nullValue: "(null)", back: "Back",
      loading: "Loading…", error: "Error", zoomIn: "Zoom in for statistics",
      street_office: "Street office", community: "Community", grid: "Grid",
      compound: "Compound", building: "Building", unit: "Unit", household: "Household",
      resident: "Resident", address: "Address", alley: "Alley", lang: "中文", count: "Count",
      openDrill: "Drill down", hour: "1 hour", day: "1 day", week: "7 days",
      children: "Below",
    },
  };

  /* The drill-down chain: each level's children and how they are filtered. */
  var LEVELS = ["street_office", "community", "grid", "compound", "building", "unit",
    "household", "resident"];
  var CHILD = {
    street_office: { level: "community", key: "street_office_id" },
    community: { level: "grid", key: "community_id" },
    grid: { level: "compound", key: "grid_id" },
    compound: { level: "building", key: "compound_id" },
    building: { level: "unit", key: "building_id" },
    unit: { level: "household", key: "unit_id" },
    household: { level: "resident", key: "household_id" },
  };
  var STAT_FIELDS = ["households", "occupied", "residents", "elderly"];
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

  var maplibrePromise = null;

  function loadMapLibre(base) {
    if (window.maplibregl) return Promise.resolve(window.maplibregl);
    if (maplibrePromise) return maplibrePromise;
    maplibrePromise = new Promise(function (resolve, reject) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = base + "/static/maplibre-gl/maplibre-gl.css";
      document.head.appendChild(css);
      var js = document.createElement("script");
      js.src = base + "/static/maplibre-gl/maplibre-gl.js";
      js.onload = function () { resolve(window.maplibregl); };
      js.onerror = function () { reject(new Error("MapLibre could not be loaded from " + js.src)); };
      document.head.appendChild(js);
    });
    return maplibrePromise;
  }

  function injectCss() {
    if (document.getElementById("onemap-widget-css")) return;
    var s = document.createElement("style");
    s.id = "onemap-widget-css";
    s.textContent = [
      ".onemap-root{position:relative;overflow:hidden;font:13px/1.4 system-ui,sans-serif;min-height:300px}",
      ".onemap-map{position:absolute;inset:0}",
      ".onemap-box{position:absolute;background:rgba(255,255,255,.95);border-radius:6px;",
      "box-shadow:0 1px 4px rgba(0,0,0,.3);padding:6px 8px;z-index:2;max-height:45%;overflow:auto}",
      ".onemap-top{top:8px;left:8px;width:270px;max-height:none;overflow:visible;z-index:3}",
      ".onemap-top input{width:100%;box-sizing:border-box;padding:4px}",
      ".onemap-results{list-style:none;margin:4px 0 0;padding:0;max-height:220px;overflow:auto}",
      ".onemap-results li{cursor:pointer;padding:2px 0;border-bottom:1px solid #eee}",
      ".onemap-left{left:8px;bottom:28px;width:220px;max-height:calc(100% - 110px)}",
      ".onemap-right{right:50px;top:8px;width:280px;max-height:55%}",
      ".onemap-bottom{right:8px;bottom:28px;width:240px;max-height:35%}",
      ".onemap-box h4{margin:4px 0;font-size:13px}",
      ".onemap-swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle;border:1px solid #555}",
      ".onemap-kv{border-collapse:collapse;width:100%}.onemap-kv td{border-bottom:1px solid #eee;padding:1px 4px;vertical-align:top;word-break:break-all}",
      ".onemap-null{color:#999;font-style:italic}",
      ".onemap-item{cursor:pointer;color:#0645ad}.onemap-denied{color:#a33}",
      ".onemap-btn{cursor:pointer;font-size:12px;margin:2px}",
    ].join("");
    document.head.appendChild(s);
  }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "testid") e.setAttribute("data-testid", attrs[k]);
      else if (k === "className") e.className = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function withParam(url, name, value) {
    // Template braces must survive: edit the query string by hand.
    var parts = url.split("?");
    var query = (parts[1] || "").split("&").filter(function (p) {
      return p && p.split("=")[0] !== name;
    });
    if (value != null) query.push(name + "=" + encodeURIComponent(value));
    return parts[0] + (query.length ? "?" + query.join("&") : "");
  }

  function Widget(root) {
    var self = this;
    this.root = root;
    var ds = root.dataset;
    this.theme = ds.onemapTheme || "grid_management";
    this.base = (ds.onemapBase || SCRIPT_BASE || window.location.origin).replace(/\/$/, "");
    this.token = ds.onemapToken || "";
    this.apiKey = ds.onemapKey || "";
    this.lang = ds.onemapLang === "en" ? "en" : "zh";
    this.styleMode = ds.onemapStyle || "auto";
    this.legend = [];
    this.timeSources = {}; // source id → original tile URLs, for sources with time layers
    this.timeLayers = [];
    this.datetime = null;
    this.panel = null; // the drill-down panel state
    this.popupState = null;
    this.titles = {}; // lang → {collection id → title}, from GET /collections?lang=
    this._titleJobs = {};
    this.fieldTitles = {}; // lang → {collection id → {property → title}}, from queryables
    this.valueTitles = {}; // lang → {collection id → {property → {coded value → label}}}
    this._fieldJobs = {};
    this.ready = this._start().then(function () { return self; });
  }

  Widget.prototype.t = function (key) { return TEXT[this.lang][key] || key; };

  /* A layer's (collection's) name in the current language: the server's collection
   * title (pygeoapi-config.yml, zh and en); the id only while titles are loading or
   * for a layer the server does not list. */
  Widget.prototype.title = function (id) {
    var titles = this.titles[this.lang];
    return (titles && titles[id]) || TEXT[this.lang][id] || id;
  };

  /* Promise of the collection titles in ``lang`` (GET /collections?lang=, once per
   * language); relabels the widget when they arrive for the language shown. */
  Widget.prototype.loadTitles = function (lang) {
    var self = this;
    lang = lang || this.lang;
    if (this._titleJobs[lang]) return this._titleJobs[lang];
    this._titleJobs[lang] = this.api("/collections?f=json&lang=" + lang).then(function (r) {
      var map = {};
      ((r.data && r.data.collections) || []).forEach(function (c) {
        if (c && c.id && typeof c.title === "string") map[c.id] = c.title;
      });
      if (!r.ok) delete self._titleJobs[lang]; // try again next time
      self.titles[lang] = map;
      if (lang === self.lang && self.map && self.legend) self._relabel();
      return map;
    });
    return this._titleJobs[lang];
  };
  /* A property's title in the current language (the collection's queryables: the server's
   * layers/fields.yml); the column name only for a property without one, or while loading. */
  Widget.prototype.fieldTitle = function (collection, name) {
    var titles = (this.fieldTitles[this.lang] || {})[collection];
    return (titles && titles[name]) || name;
  };

  /* The label of a coded value (``oneOf`` of the property in the queryables), or null. */
  Widget.prototype.valueTitle = function (collection, name, value) {
    var labels = ((this.valueTitles[this.lang] || {})[collection] || {})[name];
    return labels && Object.prototype.hasOwnProperty.call(labels, value) ? labels[value] : null;
  };

  /* Promise of ``collection``'s property titles in ``lang`` (GET
   * /collections/{id}/queryables?lang=, once per collection and language), and the labels
   * of its coded values; re-renders the record popup when they arrive for what it shows. */
  Widget.prototype.loadFieldTitles = function (collection, lang) {
    var self = this;
    lang = lang || this.lang;
    var key = lang + "/" + collection;
    if (this._fieldJobs[key]) return this._fieldJobs[key];
    var path = "/collections/" + encodeURIComponent(collection) + "/queryables?f=json&lang=" + lang;
    this._fieldJobs[key] = this.api(path).then(function (r) {
      var map = {};
      var values = {};
      var props = (r.data && r.data.properties) || {};
      Object.keys(props).forEach(function (k) {
        if (props[k] && typeof props[k].title === "string") map[k] = props[k].title;
        if (props[k] && Array.isArray(props[k].oneOf)) {
          values[k] = {};
          props[k].oneOf.forEach(function (o) {
            if (o && typeof o.title === "string") values[k][String(o.const)] = o.title;
          });
        }
      });
      if (!r.ok) delete self._fieldJobs[key]; // try again next time
      (self.valueTitles[lang] = self.valueTitles[lang] || {})[collection] = values;
      (self.fieldTitles[lang] = self.fieldTitles[lang] || {})[collection] = map;
      var s = self.popupState;
      if (s && s.collection === collection && lang === self.lang) self._renderPopup();
      return map;
    });
    return this._fieldJobs[key];
  };

  Widget.prototype.headers = function () {
    var h = {};
    if (this.token) h.Authorization = "Bearer " + this.token;
    if (this.apiKey) h["X-API-Key"] = this.apiKey;
    return h;
  };

  /* fetch JSON from the server: always resolves {status, ok, data}. */
  Widget.prototype.api = function (path, body) {
    var opts = { headers: this.headers() };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var url = /^https?:/.test(path) ? path : this.base + path;
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        return { status: r.status, ok: r.ok, data: data };
      });
    }, function (err) {
      return { status: 0, ok: false, data: null, error: String(err) };
    });
  };

  Widget.prototype._start = function () {
    var self = this;
    injectCss();
    this.root.classList.add("onemap-root");
    if (!this.root.style.height && this.root.clientHeight < 100) this.root.style.height = "500px";
    // Inline: maplibre-gl.css (loaded later) makes its container position:relative.
    this.mapEl = el("div", { className: "onemap-map", testid: "onemap-map",
      style: "position:absolute;top:0;left:0;right:0;bottom:0" });
    this.root.appendChild(this.mapEl);
    this._buildUi();
    return Promise.all([loadMapLibre(this.base), this._loadStyle()]).then(function (res) {
      var maplibregl = res[0];
      var style = res[1];
      var ds = self.root.dataset;
      var opts = {
        container: self.mapEl,
        style: style,
        localIdeographFontFamily: "sans-serif",
        attributionControl: { compact: true },
        transformRequest: function (url) {
          if (url.indexOf(self.base) === 0) return { url: url, headers: self.headers() };
          return { url: url };
        },
      };
      if (ds.onemapCenter) opts.center = ds.onemapCenter.split(",").map(Number);
      if (ds.onemapZoom) opts.zoom = Number(ds.onemapZoom);
      self.map = new maplibregl.Map(opts);
      self.map.addControl(new maplibregl.NavigationControl(), "top-right");
      self.map.on("click", function (e) { self._onClick(e); });
      self.map.on("moveend", function () { self._scheduleViewStats(); });
      return new Promise(function (resolve) {
        if (self.map.loaded()) resolve(); else self.map.once("load", resolve);
      });
    }).then(function () {
      if (!self.root.dataset.onemapCenter) self._fitToData();
      return Promise.all([self._loadLegend(), self._findTimeLayers(), self.loadTitles()]);
    }).then(function () {
      self._renderSwitcher();
      self._renderLegend();
      self._renderTime();
      self._renderLabels();
      return self.viewStats();
    });
  };

  Widget.prototype._fitToData = function () {
    var bounds = null;
    var style = this.map.getStyle();
    Object.keys(style.sources).forEach(function (id) {
      var src = this.map.getSource(id);
      if (!bounds && src && src.bounds) bounds = src.bounds;
    }, this);
    // A style that states its view keeps it; otherwise the data's extent.
    if (style.center && (style.center[0] || style.center[1])) return;
    if (bounds && bounds[0] > -180) {
      this.map.fitBounds([[bounds[0], bounds[1]], [bounds[2], bounds[3]]], { duration: 0, padding: 20 });
    }
  };

  /* The style: the server's /styles/{id}, or a plain one over the theme's TileJSON. */
  Widget.prototype._loadStyle = function () {
    var self = this;
    var fallback = function () { return self._plainStyle(); };
    if (this.styleMode === "tilejson") return fallback();
    return this.api("/styles/" + encodeURIComponent(this.theme)).then(function (r) {
      if (r.ok && r.data && r.data.layers) {
        self.styleSource = "styles";
        return r.data;
      }
      return fallback();
    });
  };

  Widget.prototype._plainStyle = function () {
    var self = this;
    var themeId = this.theme === "operations" ? "city_ops" : this.theme;
    var tilesetUrl = "/tiles/" + encodeURIComponent(themeId) + "/WebMercatorQuad";
    return this.api(tilesetUrl).then(function (r) {
      self.styleSource = "tilejson";
      var layers = (r.data && r.data.layers) || [];
      var style = {
        version: 8,
        sources: {
          onemap: { type: "vector", url: self.base + tilesetUrl + "/tilejson.json" },
        },
        layers: [{ id: "background", type: "background", paint: { "background-color": "#f4f1ea" } }],
      };
      layers.forEach(function (lyr, i) {
        var color = PALETTE[i % PALETTE.length];
        var geom = (lyr.geometryType || "").toUpperCase();
        var common = { source: "onemap", "source-layer": lyr.id, metadata: { "onemap:title": lyr.title } };
        if (geom.indexOf("POLYGON") >= 0) {
          style.layers.push(Object.assign({ id: lyr.id + "-fill", type: "fill",
            paint: { "fill-color": color, "fill-opacity": 0.25 } }, common));
          style.layers.push(Object.assign({ id: lyr.id + "-line", type: "line",
            paint: { "line-color": color, "line-width": 1 } }, common));
        } else if (geom.indexOf("LINE") >= 0) {
          style.layers.push(Object.assign({ id: lyr.id + "-line", type: "line",
            paint: { "line-color": color, "line-width": 2 } }, common));
        }
        // Points, and the count aggregates every layer may carry at low zoom.
        style.layers.push(Object.assign({ id: lyr.id + "-circle", type: "circle",
          filter: ["==", ["geometry-type"], "Point"],
          paint: {
            "circle-color": color, "circle-stroke-color": "#fff", "circle-stroke-width": 1,
            "circle-radius": ["case", ["has", "count"],
              ["min", 18, ["+", 3, ["sqrt", ["to-number", ["get", "count"]]]]], 4],
          } }, common));
      });
      return style;
    });
  };

  Widget.prototype._loadLegend = function () {
    var self = this;
    if (this.styleSource !== "styles") {
      this.legend = this._legendFromStyle();
      return Promise.resolve();
    }
    return this.api("/styles/" + encodeURIComponent(this.theme) + "/legend").then(function (r) {
      var entries = r.data && r.data.entries;  // {style, title, entries} (spatial/styles.py)
      self.legend = Array.isArray(entries) && entries.length ? entries : self._legendFromStyle();
    });
  };

  Widget.prototype._legendFromStyle = function () {
    return this.map.getStyle().layers.filter(function (l) { return l.source; }).map(function (l) {
      var paint = l.paint || {};
      var color = paint["fill-color"] || paint["line-color"] || paint["circle-color"] ||
        paint["text-color"] || "#888";
      var title = (l.metadata && l.metadata["onemap:title"]) || {};
      // Without titles of its own the legend names the layer by its collection's title.
      return { layer: l.id, source_layer: l["source-layer"], label_zh: title.zh || null,
        label_en: title.en || null, type: l.type, color: typeof color === "string" ? color : "#888" };
    });
  };

  /* Source layers of the style's vector sources, grouped for the switcher. */
  Widget.prototype._groups = function () {
    var groups = [];
    var seen = {};
    this.map.getStyle().layers.forEach(function (l) {
      if (!l.source) return;
      var key = l["source-layer"] || l.id;
      if (!seen[key]) {
        seen[key] = { key: key, layers: [] };
        groups.push(seen[key]);
      }
      seen[key].layers.push(l.id);
    });
    return groups;
  };

  Widget.prototype._groupLabel = function (group) {
    var lang = this.lang;
    var entry = this.legend.filter(function (e) {
      return e.layer === group.key || group.layers.indexOf(e.layer) >= 0 || e.source_layer === group.key;
    })[0];
    if (entry) {
      var label = lang === "zh" ? entry.label_zh : entry.label_en;
      // A legend entry may name a category ("用地：水域", "Buildings (count)"): the
      // switcher shows the layer, the part before it.
      if (label) return String(label).split(/[：:（(]/)[0].trim() || label;
    }
    return this.title(group.key);
  };

  Widget.prototype._buildUi = function () {
    var self = this;
    this.ui = {};
    this.ui.searchInput = el("input", { type: "search", testid: "onemap-search-input" });
    this.ui.results = el("ul", { className: "onemap-results", testid: "onemap-search-results" });
    var timer = null;
    this.ui.searchInput.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { self.search(self.ui.searchInput.value); }, 250);
    });
    this.ui.langBtn = el("button", { className: "onemap-btn", testid: "onemap-lang-toggle",
      onclick: function () { self.setLang(self.lang === "zh" ? "en" : "zh"); } });
    this.ui.top = el("div", { className: "onemap-box onemap-top", testid: "onemap-search" },
      [this.ui.searchInput, this.ui.langBtn, this.ui.results]);
    this.ui.switcherTitle = el("h4");
    this.ui.switcherList = el("div");
    this.ui.switcher = el("div", { testid: "onemap-layer-switcher" },
      [this.ui.switcherTitle, this.ui.switcherList]);
    this.ui.legendTitle = el("h4");
    this.ui.legendList = el("div");
    this.ui.legend = el("div", { testid: "onemap-legend" }, [this.ui.legendTitle, this.ui.legendList]);
    this.ui.time = el("div", { testid: "onemap-time" });
    this.ui.left = el("div", { className: "onemap-box onemap-left" },
      [this.ui.switcher, this.ui.legend, this.ui.time]);
    this.ui.drill = el("div", { className: "onemap-box onemap-right", testid: "onemap-drill" });
    this.ui.drill.style.display = "none";
    this.ui.viewStats = el("div", { className: "onemap-box onemap-bottom", testid: "onemap-view-stats" });
    [this.ui.top, this.ui.left, this.ui.drill, this.ui.viewStats].forEach(function (n) {
      self.root.appendChild(n);
    });
  };

  Widget.prototype._renderLabels = function () {
    this.ui.searchInput.placeholder = this.t("search");
    this.ui.langBtn.textContent = this.t("lang");
    this.ui.switcherTitle.textContent = this.t("layers");
    this.ui.legendTitle.textContent = this.t("legend");
    this.root.setAttribute("lang", this.lang === "zh" ? "zh-CN" : "en");
  };

  /* Set the language; returns it. The layers' names follow when the server's titles
   * in that language have arrived (``loadTitles(lang)`` resolves then). */
  Widget.prototype.setLang = function (lang) {
    this.lang = lang === "en" ? "en" : "zh";
    this._relabel();
    if (this.map) this.loadTitles(this.lang);
    if (this.popupState) this.loadFieldTitles(this.popupState.collection, this.lang);
    return this.lang;
  };

  Widget.prototype._relabel = function () {
    this._renderLabels();
    if (this.map) {
      this._renderSwitcher();
      this._renderLegend();
      this._renderTime();
      this._renderViewStats();
    }
    if (this.panel) this._renderDrill();
    if (this.popupState) this._renderPopup();
  };

  Widget.prototype._renderSwitcher = function () {
    var self = this;
    var list = this.ui.switcherList;
    list.textContent = "";
    this._groups().forEach(function (g) {
      var visible = g.layers.some(function (id) {
        return self.map.getLayoutProperty(id, "visibility") !== "none";
      });
      var box = el("input", { type: "checkbox", testid: "onemap-layer-toggle", "data-layer": g.key });
      box.checked = visible;
      box.addEventListener("change", function () {
        // Read once: setLayerVisible re-syncs the boxes after each layer.
        var on = box.checked;
        g.layers.forEach(function (id) { self.setLayerVisible(id, on); });
      });
      list.appendChild(el("label", { style: "display:block" }, [box, " " + self._groupLabel(g)]));
    });
  };

  Widget.prototype.setLayerVisible = function (styleLayerId, visible) {
    if (!this.map.getLayer(styleLayerId)) throw new Error("no style layer " + styleLayerId);
    this.map.setLayoutProperty(styleLayerId, "visibility", visible ? "visible" : "none");
    var self = this;
    this._groups().forEach(function (g) {
      if (g.layers.indexOf(styleLayerId) < 0) return;
      var any = g.layers.some(function (id) { return self.map.getLayoutProperty(id, "visibility") !== "none"; });
      var box = self.ui.switcherList.querySelector('input[data-layer="' + g.key + '"]');
      if (box) box.checked = any;
    });
    return visible;
  };

  Widget.prototype._renderLegend = function () {
    var self = this;
    var lang = this.lang;
    var list = this.ui.legendList;
    list.textContent = "";
    this.legend.forEach(function (e) {
      var label = (lang === "zh" ? e.label_zh : e.label_en) ||
        self.title(e.source_layer || e.layer);
      var color = e.color || "#888";
      var sw = el("span", { className: "onemap-swatch" });
      sw.style.background = e.type === "line" ? "transparent" : color;
      sw.style.borderColor = color;
      if (e.type === "line") sw.style.borderWidth = "0 0 3px 0";
      if (e.type === "circle" || e.type === "symbol") sw.style.borderRadius = "50%";
      list.appendChild(el("div", { testid: "onemap-legend-entry", "data-layer": e.layer || "" },
        [sw, label]));
    });
  };

  /* Time-stamped layers (onemap:timeField in the tileset metadata) and their sources. */
  Widget.prototype._findTimeLayers = function () {
    var self = this;
    var style = this.map.getStyle();
    var jobs = Object.keys(style.sources).map(function (id) {
      var src = style.sources[id];
      if (src.type !== "vector") return null;
      var tileUrl = src.url || (src.tiles && src.tiles[0]) || "";
      var m = tileUrl.match(/^(.*\/(?:tiles\/[^/]+|collections\/[^/]+\/tiles)\/WebMercatorQuad)(?:\/|\?|$)/);
      if (!m || m[1].indexOf(self.base) !== 0) return null;
      return self.api(m[1]).then(function (r) {
        var timed = ((r.data && r.data.layers) || []).filter(function (l) { return l["onemap:timeField"]; });
        if (!timed.length) return;
        // A TileJSON source is re-pointed at its TileJSON with datetime= (the server
        // copies the query into the tile URLs); a tiles source gets new tile URLs.
        self.timeSources[id] = src.url ? { url: src.url } : { tiles: (src.tiles || []).slice() };
        timed.forEach(function (l) {
          if (self.timeLayers.indexOf(l.id) < 0) self.timeLayers.push(l.id);
        });
      });
    }).filter(Boolean);
    return Promise.all(jobs);
  };

  /* Set ``datetime=`` (an RFC 3339 instant or interval, null = the layers' default) on
   * the tile URLs of every source carrying a time-stamped layer. */
  Widget.prototype.setTime = function (datetime) {
    var self = this;
    this.datetime = datetime || null;
    Object.keys(this.timeSources).forEach(function (id) {
      var src = self.map.getSource(id);
      var original = self.timeSources[id];
      if (!src) return;
      if (original.url && src.setUrl) src.setUrl(withParam(original.url, "datetime", self.datetime));
      else if (original.tiles && src.setTiles) {
        src.setTiles(original.tiles.map(function (u) { return withParam(u, "datetime", self.datetime); }));
      }
    });
    if (this.ui.timeValue) this.ui.timeValue.textContent = this.datetime || this.t("live");
    return this.datetime;
  };

  Widget.prototype._renderTime = function () {
    var self = this;
    var box = this.ui.time;
    box.textContent = "";
    if (!this.timeLayers.length) return;
    var windows = { hour: 1, day: 24, week: 168 };
    var slider = el("input", { type: "range", min: "0", max: "720", step: "1", value: "0",
      testid: "onemap-time-slider" });
    var select = el("select", { testid: "onemap-time-window" });
    Object.keys(windows).forEach(function (k) {
      select.appendChild(el("option", { value: String(windows[k]), text: self.t(k) }));
    });
    select.value = "24";
    var live = el("input", { type: "checkbox", testid: "onemap-time-live" });
    live.checked = !this.datetime;
    this.ui.timeValue = el("div", { testid: "onemap-time-value", text: this.datetime || this.t("live") });
    function apply() {
      if (live.checked) { self.setTime(null); return; }
      var end = new Date(Date.now() - Number(slider.value) * 3600e3);
      end.setMinutes(0, 0, 0);
      var start = new Date(end.getTime() - Number(select.value) * 3600e3);
      self.setTime(start.toISOString().replace(/\.000Z$/, "Z") + "/" +
        end.toISOString().replace(/\.000Z$/, "Z"));
    }
    slider.addEventListener("change", function () { live.checked = false; apply(); });
    select.addEventListener("change", function () { live.checked = false; apply(); });
    live.addEventListener("change", apply);
    box.appendChild(el("h4", { text: this.t("time") + " (" +
      this.timeLayers.map(function (id) { return self.title(id); }).join(", ") + ")" }));
    box.appendChild(el("label", {}, [live, " " + this.t("live")]));
    box.appendChild(el("div", {}, [slider]));
    box.appendChild(el("label", {}, [this.t("window") + " ", select]));
    box.appendChild(this.ui.timeValue);
  };

  /* ---- search ---- */
  Widget.prototype.search = function (q) {
    var self = this;
    var list = this.ui.results;
    q = (q || "").trim();
    list.textContent = "";
    if (!q) return Promise.resolve([]);
    list.appendChild(el("li", { text: this.t("searching") }));
    return this.api("/search?q=" + encodeURIComponent(q) + "&limit=10").then(function (r) {
      list.textContent = "";
      var hits = r.ok && Array.isArray(r.data) ? r.data : [];
      if (!hits.length) list.appendChild(el("li", { text: self.t("noHits") }));
      hits.forEach(function (h) {
        list.appendChild(el("li", { testid: "onemap-search-result", "data-collection": h.collection,
          "data-id": String(h.id), onclick: function () { self.goTo(h); } },
        ["[" + self.t(h.type) + "] " + h.label]));
      });
      return hits;
    });
  };

  Widget.prototype.goTo = function (hit) {
    if (hit.bbox) this.map.fitBounds([[hit.bbox[0], hit.bbox[1]], [hit.bbox[2], hit.bbox[3]]],
      { padding: 60, maxZoom: 18, duration: 0 });
    else this.map.jumpTo({ center: [hit.lon, hit.lat], zoom: 18 });
    if (LEVELS.indexOf(hit.collection) >= 0) this.drill(hit.collection, hit.id);
    return this.showRecord(hit.collection, hit.id, [hit.lon, hit.lat]);
  };

  /* ---- click → popup with the record ---- */
  Widget.prototype._onClick = function (e) {
    var feats = this.map.queryRenderedFeatures(e.point).filter(function (f) {
      return f.id != null && f.sourceLayer && !(f.properties && "count" in f.properties);
    });
    if (!feats.length) return;
    var f = feats[0];
    this.showRecord(f.sourceLayer, f.id, [e.lngLat.lng, e.lngLat.lat]);
  };

  Widget.prototype.showRecord = function (collection, id, lngLat) {
    var self = this;
    this.popupState = { collection: collection, id: id, status: null, properties: null, lngLat: lngLat };
    this._renderPopup();
    var path = "/collections/" + encodeURIComponent(collection) + "/items/" + encodeURIComponent(id) + "?f=json";
    var titles = this.loadFieldTitles(collection, this.lang);
    return Promise.all([this.api(path), titles]).then(function (res) {
      var r = res[0];
      if (!self.popupState || self.popupState.id !== id) return null;
      self.popupState.status = r.status;
      self.popupState.properties = r.ok && r.data ? (r.data.properties || {}) : null;
      self._renderPopup();
      return self.popupState;
    });
  };

  /* A record value: a coded value by its label (the stored code as a tooltip). */
  Widget.prototype._valueNode = function (v, label) {
    if (v === null || v === undefined) return el("span", { className: "onemap-null", text: this.t("nullValue") });
    if (typeof v === "object") return document.createTextNode(JSON.stringify(v));
    if (label !== null && label !== undefined) return el("span", { text: label, title: String(v) });
    return document.createTextNode(String(v));
  };

  Widget.prototype._renderPopup = function () {
    var self = this;
    var s = this.popupState;
    if (!s || !this.map) return;
    var body = el("div", { testid: "onemap-popup" });
    body.appendChild(el("h4", { text: this.title(s.collection) + " #" + s.id }));
    if (s.status === null) body.appendChild(el("div", { text: this.t("loading") }));
    else if (!s.properties) {
      body.appendChild(el("div", { className: "onemap-denied", testid: "onemap-popup-denied",
        text: this.t("denied") + " (" + s.status + ")" }));
    } else {
      var table = el("table", { className: "onemap-kv" });
      Object.keys(s.properties).forEach(function (k) {
        table.appendChild(el("tr", { "data-field": k }, [el("td", { text: self.fieldTitle(s.collection, k) }),
          el("td", {}, [self._valueNode(s.properties[k],
            self.valueTitle(s.collection, k, s.properties[k]))])]));
      });
      body.appendChild(table);
    }
    if (LEVELS.indexOf(s.collection) >= 0) {
      body.appendChild(el("button", { className: "onemap-btn", testid: "onemap-popup-drill",
        text: this.t("openDrill"), onclick: function () { self.drill(s.collection, s.id); } }));
    }
    if (!this.popup) {
      this.popup = new window.maplibregl.Popup({ maxWidth: "320px" });
      this.popup.on("close", function () { self.popupState = null; self.popup = null; });
    }
    this.popup.setDOMContent(body);
    if (s.lngLat) this.popup.setLngLat(s.lngLat);
    if (!this.popup.isOpen() && s.lngLat) this.popup.addTo(this.map);
  };

  /* ---- drill-down ---- */
  function sumStats(nodes) {
    var out = { households: 0, occupied: 0, residents: 0, elderly: 0 };
    nodes.forEach(function (n) { STAT_FIELDS.forEach(function (k) { out[k] += n[k] || 0; }); });
    return out;
  }

  /* The statistics tree of a grid-statistics answer, or null. */
  function statsTree(r) {
    var tree = r.ok && r.data ? (r.data.statistics || r.data) : null;
    return tree && tree.level ? tree : null;
  }

  /* The figures of a statistics tree's root, as the stats tables show them. */
  function treeFigures(tree) {
    return { households: tree.households, occupied: tree.occupied,
      residents: tree.residents, elderly: tree.elderly, events: tree.events || {} };
  }

  Widget.prototype._stats = function (level, id) {
    var depth = { street_office: "community", community: "grid", grid: "building" }[level];
    return this.api("/processes/grid-statistics/execution",
      { inputs: { level: level, unit_id: Number(id), depth: depth } }).then(function (r) {
      return { status: r.status, tree: statsTree(r) };
    });
  };

  /* Statistics of a building: its node in its grid's tree. */
  Widget.prototype._buildingNodes = function (gridId) {
    if (gridId == null) return Promise.resolve(null);
    return this._stats("grid", gridId).then(function (s) {
      if (!s.tree) return null;
      var byId = {};
      (s.tree.children || []).forEach(function collect(n) {
        if (n.level === "building") byId[n.id] = n;
        (n.children || []).forEach(collect);
      });
      return byId;
    });
  };

  /**
   * Open the drill-down panel at ``level`` (street_office … resident) and unit ``id``.
   * Resolves with the panel state: {level, id, name, status, record, stats, childLevel,
   * children: [{level, id, name}], childStatus, childCount, denied, path}.
   */
  Widget.prototype.drill = function (level, id) {
    var self = this;
    if (LEVELS.indexOf(level) < 0) return Promise.reject(new Error("unknown level " + level));
    var state = { level: level, id: Number(id), name: null, status: null, record: null,
      stats: null, statsSource: null, childLevel: CHILD[level] ? CHILD[level].level : null,
      children: [], childStatus: null, childCount: null, denied: false, loading: true,
      path: (this.panel && this.panel.path ? this.panel.path : []) };
    // Keep the breadcrumb when going down, cut it when going back up or elsewhere.
    var at = state.path.map(function (p) { return p.level + ":" + p.id; }).indexOf(level + ":" + id);
    if (at >= 0) state.path = state.path.slice(0, at);
    else if (!(this.panel && CHILD[this.panel.level] && CHILD[this.panel.level].level === level)) state.path = [];
    else state.path = state.path.concat([{ level: this.panel.level, id: this.panel.id, name: this.panel.name }]);
    this.panel = state;
    this._renderDrill();

    var record = this.api("/collections/" + level + "/items/" + state.id + "?f=json");
    var children = CHILD[level] ? this.api("/collections/" + CHILD[level].level + "/items?f=json&limit=500&" +
      CHILD[level].key + "=" + state.id) : Promise.resolve(null);
    return Promise.all([record, children]).then(function (res) {
      var rec = res[0];
      var kids = res[1];
      state.status = rec.status;
      state.record = rec.ok && rec.data ? rec.data.properties || {} : null;
      if (state.record) {
        var p = state.record;
        state.name = p.name || p.address || p.room_no || p.number || p.code || null;
      }
      if (kids) {
        state.childStatus = kids.status;
        var feats = kids.ok && kids.data && kids.data.features ? kids.data.features : [];
        state.childCount = kids.ok && kids.data ? (kids.data.numberMatched != null ? kids.data.numberMatched : feats.length) : null;
        state.children = feats.map(function (f) {
          var p = f.properties || {};
          return { level: state.childLevel, id: f.id,
            name: p.name != null ? p.name : (p.room_no || p.number || p.address || p.code || null) };
        });
      }
      state.denied = !state.record || (kids !== null && !kids.ok);
      return self._drillStats(state);
    }).then(function () {
      state.loading = false;
      if (self.panel === state) self._renderDrill();
      return state;
    });
  };

  Widget.prototype._drillStats = function (state) {
    var self = this;
    var level = state.level;
    if (level === "street_office" || level === "community" || level === "grid") {
      return this._stats(level, state.id).then(function (s) {
        state.statsStatus = s.status;
        if (!s.tree) return;
        state.stats = treeFigures(s.tree);
        state.statsSource = "grid-statistics";
        // Children known to the statistics but not returned by the API: counts only
        // (a grid without compounds lists its buildings, by the statistics' names).
        if (!state.children.length) {
          state.children = (s.tree.children || []).map(function (n) {
            return { level: n.level, id: n.id, name: n.level === "building" ? n.name : null,
              stats: sumStats([n]) };
          });
        } else if (level !== "grid") {  // a grid's children are compounds, its tree buildings
          var byId = {};
          (s.tree.children || []).forEach(function (n) { byId[n.id] = n; });
          state.children.forEach(function (c) { if (byId[c.id]) c.stats = sumStats([byId[c.id]]); });
        }
      });
    }
    // Below a grid: the buildings' figures from their grid's tree.
    var gridId = null;
    var buildingIds = [];
    if (level === "compound") {
      gridId = state.record ? state.record.grid_id : null;
      buildingIds = state.children.map(function (c) { return c.id; });
    } else if (level === "building") {
      gridId = state.record ? state.record.grid_id : null;
      buildingIds = [state.id];
    }
    // Units, households and residents: the statistics stop at buildings; the count
    // of what the API returned below.
    return this._buildingNodes(gridId).then(function (byId) {
      if (byId && buildingIds.length) {
        var nodes = buildingIds.map(function (b) { return byId[b]; }).filter(Boolean);
        state.stats = sumStats(nodes);
        state.statsSource = "grid-statistics";
        if (level === "compound") state.children.forEach(function (c) {
          if (byId[c.id]) c.stats = sumStats([byId[c.id]]);
        });
      } else if (level === "household" || level === "unit" || level === "resident") {
        state.stats = { count: state.childCount };
        state.statsSource = "items";
      }
    });
  };

  Widget.prototype._renderStatsTable = function (stats) {
    var self = this;
    var table = el("table", { className: "onemap-kv", testid: "onemap-drill-stats" });
    Object.keys(stats).forEach(function (k) {
      var v = stats[k];
      if (k === "events" && v && typeof v === "object") {
        var total = Object.keys(v).reduce(function (a, s) { return a + v[s]; }, 0);
        v = total;
      }
      table.appendChild(el("tr", { "data-stat": k }, [el("td", { text: self.t(k) }),
        el("td", {}, [self._valueNode(v)])]));
    });
    return table;
  };

  Widget.prototype._renderDrill = function () {
    var self = this;
    var s = this.panel;
    var box = this.ui.drill;
    box.textContent = "";
    if (!s) { box.style.display = "none"; return; }
    box.style.display = "";
    box.setAttribute("data-level", s.level);
    box.setAttribute("data-id", String(s.id));
    box.setAttribute("data-loading", s.loading ? "true" : "false");
    var crumbs = el("div", { testid: "onemap-drill-path" });
    s.path.forEach(function (p) {
      crumbs.appendChild(el("span", { className: "onemap-item", text: (p.name || self.t(p.level) + " #" + p.id) + " › ",
        onclick: function () { self.drill(p.level, p.id); } }));
    });
    box.appendChild(el("div", {}, [
      el("button", { className: "onemap-btn", testid: "onemap-drill-close", text: this.t("close"),
        onclick: function () { self.panel = null; self._renderDrill(); } }),
      el("b", { text: " " + this.t("drill") })]));
    box.appendChild(crumbs);
    box.appendChild(el("h4", { testid: "onemap-drill-title",
      text: this.t(s.level) + ": " + (s.name || "#" + s.id) }));
    if (s.loading) { box.appendChild(el("div", { text: this.t("loading") })); return; }
    if (s.denied) box.appendChild(el("div", { className: "onemap-denied", testid: "onemap-drill-denied", text: this.t("denied") }));
    if (s.stats) box.appendChild(this._renderStatsTable(s.stats));
    if (s.childLevel) {
      box.appendChild(el("h4", { text: this.t(s.childLevel) + " (" +
        (s.childCount != null ? s.childCount : s.children.length) + ")" }));
      var list = el("ul", { testid: "onemap-drill-children", style: "padding-left:16px;margin:0" });
      s.children.forEach(function (c) {
        var label = c.name != null ? String(c.name) : self.t(c.level) + " #" + c.id;
        var figures = c.stats ? " — " + self.t("households") + " " + c.stats.households + ", " +
          self.t("residents") + " " + c.stats.residents : "";
        var canOpen = c.level !== "resident" || c.name != null;
        list.appendChild(el("li", { testid: "onemap-drill-item", "data-level": c.level,
          "data-id": String(c.id), "data-named": c.name != null ? "true" : "false",
          className: canOpen ? "onemap-item" : "",
          onclick: function () {
            if (c.level === "resident") self.showRecord("resident", c.id, self.map.getCenter().toArray());
            else self.drill(c.level, c.id);
          } }, [label + figures]));
      });
      if (!s.children.length) list.appendChild(el("li", { text: this.t("none") }));
      box.appendChild(list);
    }
  };

  /* ---- statistics of the area on screen ---- */
  Widget.prototype._scheduleViewStats = function () {
    var self = this;
    clearTimeout(this._viewTimer);
    this._viewTimer = setTimeout(function () { self.viewStats(); }, 400);
  };

  Widget.prototype.viewStats = function () {
    var self = this;
    if (!this.map) return Promise.resolve(null);
    var counts = {};
    this.map.queryRenderedFeatures().forEach(function (f) {
      var key = f.sourceLayer || f.layer.id;
      var n = f.properties && typeof f.properties.count === "number" ? f.properties.count : 1;
      counts[key] = counts[key] || { ids: {}, n: 0 };
      var fid = f.id != null ? f.id : Math.random();
      if (!counts[key].ids[fid]) { counts[key].ids[fid] = true; counts[key].n += n; }
    });
    var rendered = {};
    Object.keys(counts).forEach(function (k) { rendered[k] = counts[k].n; });
    var state = { rendered: rendered, stats: null, status: null, zoom: this.map.getZoom() };
    this.viewState = state;
    this._renderViewStats();
    if (this.map.getZoom() < 12) return Promise.resolve(state);
    var b = this.map.getBounds();
    var w = b.getWest(), s = b.getSouth(), e = b.getEast(), n = b.getNorth();
    var polygon = { type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] };
    return this.api("/processes/grid-statistics/execution",
      { inputs: { polygon: polygon, depth: "community" } }).then(function (r) {
      state.status = r.status;
      var tree = statsTree(r);
      if (tree) state.stats = treeFigures(tree);
      if (self.viewState === state) self._renderViewStats();
      return state;
    });
  };

  Widget.prototype._renderViewStats = function () {
    var self = this;
    var s = this.viewState;
    var box = this.ui.viewStats;
    box.textContent = "";
    if (!s) return;
    box.appendChild(el("h4", { text: this.t("viewStats") }));
    if (s.stats) box.appendChild(this._renderStatsTable(s.stats));
    else if (s.zoom < 12) box.appendChild(el("div", { className: "onemap-null", text: this.t("zoomIn") }));
    var table = el("table", { className: "onemap-kv", testid: "onemap-view-rendered" });
    Object.keys(s.rendered).sort().forEach(function (k) {
      table.appendChild(el("tr", { "data-layer": k }, [el("td", { text: self.title(k) }),
        el("td", { text: String(s.rendered[k]) })]));
    });
    box.appendChild(el("div", { text: this.t("rendered") }));
    box.appendChild(table);
  };

  /* ---- start every widget on the page ---- */
  var api = {
    __loaded: true,
    widgets: [],
    Widget: Widget,
    init: function () {
      var nodes = document.querySelectorAll("[data-onemap-theme]");
      Array.prototype.forEach.call(nodes, function (node) {
        if (node.__onemapWidget) return;
        var w = new Widget(node);
        node.__onemapWidget = w;
        api.widgets.push(w);
        w.ready.catch(function (err) {
          node.setAttribute("data-onemap-error", String(err && err.message || err));
          if (window.console) window.console.error("onemap widget:", err);
        });
      });
      api.ready = Promise.all(api.widgets.map(function (w) { return w.ready; }));
      return api.widgets;
    },
  };
  window.onemap = api;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", api.init);
  else api.init();
})();
