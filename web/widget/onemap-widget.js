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
 * data-onemap-center ("lon,lat"; default: the style's view, else the data's extent),
 * data-onemap-zoom,
 * data-onemap-token-expires (ISO: the token is refreshed ten minutes before),
 * data-onemap-refresh-minutes (without an expiry: refresh every 30 minutes),
 * data-onemap-host-origin (the iframe page's host, told of sign-in needs by message).
 *
 * Credentials: an API key for a console's backend (a service user's, no expiry), or a
 * person's login token, refreshed before it expires (POST /auth/refresh). A 401 on any
 * request shows a zh/en message with a sign-in form and fires "onemap:auth-required"
 * on the element; signing in (or the host's setToken()) loads what failed again.
 *
 * For tests: window.onemap = {widgets: [Widget...], init(), ready}; a widget has .map
 * (MapLibre), .ready (Promise), .setLayerVisible(styleLayerId, bool), .drill(level, id)
 * → Promise of the panel state, .search(q) → Promise of hits, .setLang(lang),
 * .setTime(isoIntervalOrNull), .viewStats() → Promise, .showRecord(collection, id),
 * .loadFieldTitles(collection, lang) → Promise of {property → title},
 * .openAnalysis() / .analyse(processId, inputs) → Promise of the analysis panel.
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
      authTitle: "登录已失效", authText: "登录凭据无效或已过期，地图无法加载。请重新登录。",
      relogin: "重新登录", username: "用户名", password: "密码", signingIn: "登录中…",
      signIn: "登录", signInText: "登录后可查看您权限范围内的住户、居民和事件。", cancel: "取消",
      openEvents: "未办结事件", yes: "是", no: "否", beijing: "北京时间", here: "所在位置",
      analysis: "分析", incident: "事故分析", trace: "遗撒溯源",
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
      authTitle: "Signed out", authText: "The sign-in is invalid or has expired, so the map cannot load. Please sign in again.",
      relogin: "Sign in again", username: "User name", password: "Password", signingIn: "Signing in…",
      signIn: "Sign in", signInText: "Sign in to see the households, residents and events within your remit.",
      cancel: "Cancel",
      openEvents: "Open events", yes: "Yes", no: "No", beijing: "Beijing time", here: "Located in",
      analysis: "Analysis", incident: "Analyse incident", trace: "Trace the spill",
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

  var HIGHLIGHT = "onemap-highlight"; // the GeoJSON source outlining the unit drilled into
  // Sources of the analysis panel (its results and its inputs drawn on the map): not the
  // theme's layers, so not in the switcher, the legend, the popups or the view statistics.
  var ANALYSIS = /^onemap-analysis/;
  var maplibrePromise = null;
  var analysisPromise = null;

  function ownSource(id) { return id === HIGHLIGHT || ANALYSIS.test(id || ""); }

  /* The analysis panel's module (web/widget/onemap-analysis.js), loaded on first use. */
  function loadAnalysis(base) {
    if (window.onemapAnalysis) return Promise.resolve(window.onemapAnalysis);
    if (analysisPromise) return analysisPromise;
    analysisPromise = new Promise(function (resolve, reject) {
      var js = document.createElement("script");
      js.src = base + "/widget/onemap-analysis.js";
      js.onload = function () { resolve(window.onemapAnalysis); };
      js.onerror = function () {
        analysisPromise = null;
        reject(new Error("the analysis panel could not be loaded from " + js.src));
      };
      document.head.appendChild(js);
    });
    return analysisPromise;
  }

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
      ".onemap-auth{position:absolute;inset:0;z-index:10;background:rgba(40,40,40,.55);display:flex;align-items:center;justify-content:center}",
      ".onemap-auth form{background:#fff;border-radius:8px;padding:14px 16px;width:300px;box-shadow:0 2px 10px rgba(0,0,0,.4)}",
      ".onemap-auth input{display:block;width:100%;box-sizing:border-box;margin:4px 0 8px;padding:5px}",
      ".onemap-auth .onemap-auth-error{color:#a33;min-height:1.2em}",
      ".onemap-tag{display:inline-block;background:#eef;border:1px solid #99c;border-radius:3px;padding:0 4px;margin:1px 2px 1px 0;font-size:12px}",
      ".onemap-figures{display:flex;gap:10px;margin:4px 0;font-size:12px}.onemap-figures b{font-size:14px;display:block}",
      ".onemap-here{font-size:12px;color:#555;margin-top:4px}",
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
    // When the token expires (ISO, as /auth/login answers); unknown: refreshed every
    // data-onemap-refresh-minutes (default 30) so that it never reaches its end.
    this.tokenExpires = ds.onemapTokenExpires ? Date.parse(ds.onemapTokenExpires) || null : null;
    this.refreshMinutes = Number(ds.onemapRefreshMinutes) > 0 ? Number(ds.onemapRefreshMinutes) : 30;
    // The iframe page's host (index.html): told of sign-in needs and new tokens.
    this.hostOrigin = ds.onemapHostOrigin || null;
    this.authState = null; // null, or {status} while a sign-in is needed
    this._authWaiters = [];
    this._names = {}; // "collection/id" → Promise of a unit's name (popups, breadcrumbs)
    this.timing = {}; // performance.now() at map creation and first idle
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
    var self = this;
    return fetch(url, opts).then(function (r) {
      if (r.status === 401) self._authRequired(401);
      return r.json().catch(function () { return null; }).then(function (data) {
        return { status: r.status, ok: r.ok, data: data };
      });
    }, function (err) {
      return { status: 0, ok: false, data: null, error: String(err) };
    });
  };

  /* ---- credentials: refresh before expiry, sign in again after a 401 ---- */

  /* Use ``token`` (expiring at ``expiresAt``, ISO or ms, optional) from now on: every
   * later request carries it; a pending sign-in is over and what failed is fetched
   * again. The host calls this with a token it minted; the widget after a refresh or
   * its own sign-in form. */
  Widget.prototype.setToken = function (token, expiresAt) {
    if (token !== this.token) this._tokenFromForm = false;  // (signIn sets it again)
    this.token = token || "";
    if (token) this.apiKey = "";
    this.tokenExpires = expiresAt ? (typeof expiresAt === "number" ? expiresAt : Date.parse(expiresAt) || null) : null;
    this._scheduleRefresh();
    if (this.authState) this._authRecovered();
    if (this.ui && this.ui.signInBtn) this._renderLabels();
    return this.token;
  };

  /* Use an API key instead of a token (a console backend's service user). */
  Widget.prototype.setApiKey = function (key) {
    this.apiKey = key || "";
    if (key) this.token = "";
    clearTimeout(this._refreshTimer);
    if (this.authState) this._authRecovered();
    if (this.ui && this.ui.signInBtn) this._renderLabels();
    return this.apiKey;
  };

  Widget.prototype._scheduleRefresh = function () {
    var self = this;
    clearTimeout(this._refreshTimer);
    if (!this.token || this.apiKey) return;
    var delay = this.refreshMinutes * 60e3;
    if (this.tokenExpires) {
      var left = this.tokenExpires - Date.now();
      // Ten minutes ahead on a working day's token; half-way on a short one.
      delay = left > 20 * 60e3 ? left - 10 * 60e3 : left / 2;
    }
    this._refreshTimer = setTimeout(function () { self.refreshToken(); }, Math.max(delay, 5e3));
    if (!this._wakeHook) {
      // A laptop asleep past the timer: refresh on return if the end is near.
      this._wakeHook = function () {
        if (document.visibilityState === "visible" && self.token && self.tokenExpires &&
          self.tokenExpires - Date.now() < 10 * 60e3 && !self.authState) self.refreshToken();
      };
      document.addEventListener("visibilitychange", this._wakeHook);
    }
  };

  /* Exchange the token for a new one (POST /auth/refresh); Promise of the new token or
   * null. The old token keeps working a minute on the server, so requests in flight
   * finish. Fires ``onemap:token-refreshed`` ({token, expires_at}) on the widget's
   * element, and tells the iframe's host. */
  Widget.prototype.refreshToken = function () {
    var self = this;
    if (!this.token) return Promise.resolve(null);
    return this.api("/auth/refresh", {}).then(function (r) {
      if (!r.ok || !r.data || !r.data.access_token) {
        // 401: the sign-in form is up (api()); anything else: try again in a minute
        if (r.status !== 401) self._refreshTimer = setTimeout(function () { self.refreshToken(); }, 60e3);
        return null;
      }
      var fromForm = self._tokenFromForm;  // a refreshed form token is still the form's
      self.setToken(r.data.access_token, r.data.expires_at);
      self._tokenFromForm = fromForm;
      self._tell("onemap:token-refreshed", { token: r.data.access_token, expires_at: r.data.expires_at });
      return r.data.access_token;
    });
  };

  /* An event on the widget's element (bubbling), and a message to the iframe's host. */
  Widget.prototype._tell = function (type, detail) {
    var ev;
    try {
      ev = new CustomEvent(type, { bubbles: true, cancelable: true, detail: detail });
    } catch (e) {
      ev = document.createEvent("CustomEvent");
      ev.initCustomEvent(type, true, true, detail);
    }
    var handled = !this.root.dispatchEvent(ev);
    if (this.hostOrigin && window.parent && window.parent !== window) {
      var msg = { type: type };
      var self = this;
      Object.keys(detail || {}).forEach(function (k) {
        // A token from the widget's own sign-in form stays in the frame: a page that
        // frames /widget/ must not collect what a person typed their password into.
        if (k !== "widget" && !(k === "token" && self._tokenFromForm)) msg[k] = detail[k];
      });
      window.parent.postMessage(msg, this.hostOrigin);
    }
    return handled;
  };

  /* A request was refused 401: say so, offer the sign-in form, and tell the host
   * (``onemap:auth-required``, which it may answer with setToken()). */
  Widget.prototype._authRequired = function (status) {
    if (this.authState) return;
    clearTimeout(this._refreshTimer);
    this.authState = { status: status || 401 };
    this._tell("onemap:auth-required", { widget: this, status: this.authState.status });
    this._renderAuth();
  };

  /* The sign-in form on request (the 登录 / Sign in button of a widget without a
   * credential, e.g. /widget/ opened directly): the same form as after a 401, with
   * a way to close it and keep the public map. */
  Widget.prototype.askSignIn = function () {
    if (this.authState) return;
    this.authState = { status: 0, asked: true };
    this._renderAuth();
  };

  /* Promise resolved when a sign-in (or a new credential from the host) arrives. */
  Widget.prototype._authWait = function () {
    var self = this;
    if (!this.authState) return Promise.resolve();
    return new Promise(function (resolve) { self._authWaiters.push(resolve); });
  };

  Widget.prototype._authRecovered = function () {
    this.authState = null;
    this._names = {}; // what was refused, or seen as someone else, is asked again
    this._renderAuth();
    var waiters = this._authWaiters;
    this._authWaiters = [];
    waiters.forEach(function (w) { w(); });
    if (this.map) this._reloadSources();
  };

  /* Fetch the tiles again (those refused 401 are not retried by MapLibre), and what
   * the panels showed. */
  Widget.prototype._reloadSources = function () {
    var self = this;
    var style = this.map.getStyle();
    Object.keys(style.sources).forEach(function (id) {
      var src = self.map.getSource(id);
      var def = style.sources[id];
      if (!src || def.type !== "vector") return;
      if (def.url && src.setUrl) src.setUrl(def.url);
      else if (def.tiles && src.setTiles) src.setTiles(def.tiles);
    });
    if (!Object.keys(this.titles[this.lang] || {}).length) {
      delete this._titleJobs[this.lang];
      this.loadTitles();
    }
    this._scheduleViewStats();
  };

  Widget.prototype._renderAuth = function () {
    var self = this;
    if (!this.authState) {
      if (this.ui.auth) this.ui.auth.parentNode.removeChild(this.ui.auth);
      this.ui.auth = null;
      return;
    }
    if (this.ui.auth) this.ui.auth.parentNode.removeChild(this.ui.auth);
    var user = el("input", { name: "username", autocomplete: "username", testid: "onemap-auth-username" });
    var pass = el("input", { name: "password", type: "password", autocomplete: "current-password",
      testid: "onemap-auth-password" });
    var error = el("div", { className: "onemap-auth-error", testid: "onemap-auth-error" });
    var asked = !!this.authState.asked;
    var textKey = asked ? "signInText" : "authText";
    var submit = el("button", { type: "submit", className: "onemap-btn", testid: "onemap-auth-submit",
      text: this.t(asked ? "signIn" : "relogin") });
    var parts = [
      el("h4", { text: this.t(asked ? "signIn" : "authTitle") }),
      el("p", { testid: "onemap-auth-message", text: this.t(textKey) }),
      // both languages: whoever sits at the console reads one of them
      el("p", { style: "color:#666;font-size:12px", text: TEXT[this.lang === "zh" ? "en" : "zh"][textKey] }),
      el("label", {}, [this.t("username"), user]),
      el("label", {}, [this.t("password"), pass]),
      error, submit];
    if (asked) {
      parts.push(el("button", { type: "button", className: "onemap-btn", testid: "onemap-auth-cancel",
        text: this.t("cancel"), onclick: function () { self.authState = null; self._renderAuth(); } }));
    }
    var form = el("form", { testid: "onemap-auth-form" }, parts);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      error.textContent = self.t("signingIn");
      submit.disabled = true;
      self.signIn(user.value, pass.value).then(function (r) {
        submit.disabled = false;
        if (!r.ok) error.textContent = r.message;
      });
    });
    this.ui.auth = el("div", { className: "onemap-auth", testid: "onemap-auth", role: "alertdialog" }, [form]);
    this.root.appendChild(this.ui.auth);
  };

  /* Sign in with a name and a password (POST /auth/login): Promise of {ok, message}. */
  Widget.prototype.signIn = function (username, password) {
    var self = this;
    return fetch(this.base + "/auth/login", { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: username, password: password }) }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        if (r.ok && data && data.access_token) {
          self.setToken(data.access_token, data.expires_at);
          self._tokenFromForm = true;
          self._tell("onemap:token-refreshed", { token: data.access_token, expires_at: data.expires_at });
          return { ok: true, message: "" };
        }
        return { ok: false, message: (data && data.description) || self.t("error") + " " + r.status };
      });
    }, function (err) { return { ok: false, message: String(err) }; });
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
    var ds = this.root.dataset;
    var style = this._loadStyle();
    // The first view centred on the data (the sources' TileJSON bounds), set before the
    // map starts, so that no tile of another view is fetched first.
    var bounds = ds.onemapCenter ? null : style.then(function (st) { return self._dataBounds(st); });
    return Promise.all([loadMapLibre(this.base), style, bounds]).then(function (res) {
      var maplibregl = res[0];
      var style = res[1];
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
      else if (res[2]) {
        opts.bounds = [[res[2][0], res[2][1]], [res[2][2], res[2][3]]];
        opts.fitBoundsOptions = { padding: 20 };
      }
      if (ds.onemapZoom) opts.zoom = Number(ds.onemapZoom);
      self.map = new maplibregl.Map(opts);
      // for the first-view benchmark (bench/bench_first_view.py): ms since navigation
      self.timing.map = performance.now();
      self.map.once("idle", function () { self.timing.firstIdle = performance.now(); });
      self.map.addControl(new maplibregl.NavigationControl(), "top-right");
      self.map.on("click", function (e) { self._onClick(e); });
      self.map.on("moveend", function () { self._scheduleViewStats(); });
      // A tile or TileJSON refused 401 (an expired token): MapLibre's AJAXError.
      self.map.on("error", function (e) {
        var status = e && e.error && e.error.status;
        if (status === 401) self._authRequired(401);
        else if (window.console) window.console.warn("onemap map:", e && e.error && e.error.message);
      });
      return new Promise(function (resolve) {
        if (self.map.loaded()) resolve(); else self.map.once("load", resolve);
      });
    }).then(function () {
      return Promise.all([self._loadLegend(), self._findTimeLayers(), self.loadTitles()]);
    }).then(function () {
      self._renderSwitcher();
      self._renderLegend();
      self._renderTime();
      self._renderLabels();
      self._scheduleRefresh();
      // Statistics once the first view is drawn: the process must not hold one of the
      // browser's six connections while the first tiles load.
      return new Promise(function (resolve) {
        // the next idle (the first, or one after a repaint if it has passed)
        self.map.once("idle", resolve);
        self.map.triggerRepaint();
      }).then(function () { return self.viewStats(); });
    });
  };

  /* Promise of the data's extent [w, s, e, n]: the union of the bounds in the TileJSON
   * of the style's vector sources on this server (null when none states any). */
  Widget.prototype._dataBounds = function (style) {
    var self = this;
    // A style that states its view keeps it (styles/*.json centre on the demo city's
    // data); TileJSON bounds are the layers' configured extents, not the data's.
    if (style.center && (style.center[0] || style.center[1])) return Promise.resolve(null);
    // The theme's own sources: the base map's extent is the whole country's.
    var ids = Object.keys(style.sources || {});
    var own = ids.filter(function (id) { return id !== "base"; });
    var jobs = (own.length ? own : ids).map(function (id) {
      var src = style.sources[id];
      if (src.type !== "vector") return null;
      if (src.bounds) return Promise.resolve(src.bounds);
      // a tiles template of this server: its tileset's TileJSON states the bounds
      var m = (src.tiles && src.tiles[0] || "").match(
        /^(.*\/(?:tiles\/[^/]+|collections\/[^/]+\/tiles)\/WebMercatorQuad)\//);
      var url = src.url || (m ? m[1] + "/tilejson.json" : null);
      if (!url || url.indexOf(self.base) !== 0) return null;
      return self.api(url).then(function (r) { return r.ok && r.data ? r.data.bounds : null; });
    }).filter(Boolean);
    return Promise.all(jobs).then(function (all) {
      var box = null;
      all.forEach(function (b) {
        // the world, or a country: not a city's data
        if (!Array.isArray(b) || b.length !== 4 || !(b[2] - b[0] < 5 && b[3] - b[1] < 5)) return;
        box = box ? [Math.min(box[0], b[0]), Math.min(box[1], b[1]), Math.max(box[2], b[2]),
          Math.max(box[3], b[3])] : b.slice();
      });
      return box;
    });
  };

  /* The style: the server's /styles/{id}, or a plain one over the theme's TileJSON. */
  Widget.prototype._loadStyle = function () {
    var self = this;
    var fallback = function () { return self._plainStyle(); };
    if (this.styleMode === "tilejson") return fallback();
    return this.api("/styles/" + encodeURIComponent(this.theme)).then(function (r) {
      // An invalid credential: wait for a sign-in, then load the style again.
      if (r.status === 401) return self._authWait().then(function () { return self._loadStyle(); });
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
      if (r.status === 401) return self._authWait().then(function () { return self._plainStyle(); });
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
    return this.map.getStyle().layers.filter(function (l) {
      return l.source && !ownSource(l.source);
    }).map(function (l) {
      var paint = l.paint || {};
      var color = paint["fill-color"] || paint["line-color"] || paint["circle-color"] ||
        paint["text-color"] || "#888";
      var title = (l.metadata && l.metadata["onemap:title"]) || {};
      // Without titles of its own the legend names the layer by its collection's title.
      return { layer: l.id, source_layer: l["source-layer"], label_zh: title.zh || null,
        label_en: title.en || null, type: l.type, color: typeof color === "string" ? color : "#888" };
    });
  };

  /* Source layers of the style's vector sources, grouped for the switcher. A style
   * layer the style hides by default (the history: closed events, resolved problems,
   * density with history) is a switch of its own, so turning the open events off and
   * on never brings the history with it. */
  Widget.prototype._groups = function () {
    var groups = [];
    var seen = {};
    var style = this.map.getStyle();
    if (!this._ownSwitch) {  // read once, while the style's defaults still hold
      var own = this._ownSwitch = {};
      style.layers.forEach(function (l) {
        if (l.layout && l.layout.visibility === "none") own[l.id] = true;
      });
    }
    var ownSwitch = this._ownSwitch;
    style.layers.forEach(function (l) {
      if (!l.source || ownSource(l.source)) return;
      var key = ownSwitch[l.id] ? l.id : (l["source-layer"] || l.id);
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
    var own = this._ownSwitch && this._ownSwitch[group.key] &&
      this.map.getStyle().layers.filter(function (l) { return l.id === group.key; })[0];
    var named = own && own.metadata && own.metadata["onemap:label"];
    if (named && named[lang]) return named[lang];
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
    // shown only while the widget has no credential (the public map)
    this.ui.signInBtn = el("button", { className: "onemap-btn", testid: "onemap-signin",
      onclick: function () { self.askSignIn(); } });
    this.ui.analysisBtn = el("button", { className: "onemap-btn", testid: "onemap-analysis-toggle",
      onclick: function () { self.toggleAnalysis(); } });
    this.ui.top = el("div", { className: "onemap-box onemap-top", testid: "onemap-search" },
      [this.ui.searchInput, this.ui.langBtn, this.ui.analysisBtn, this.ui.signInBtn, this.ui.results]);
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
    this._renderLabels();
  };

  Widget.prototype._renderLabels = function () {
    this.ui.searchInput.placeholder = this.t("search");
    this.ui.langBtn.textContent = this.t("lang");
    this.ui.analysisBtn.textContent = this.t("analysis");
    this.ui.signInBtn.textContent = this.t("signIn");
    this.ui.signInBtn.style.display = this.token || this.apiKey ? "none" : "";
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
    if (this.analysis) this.analysis.relabel();
  };

  /* ---- the analysis panel (分析): web/widget/onemap-analysis.js ---- */

  /* Open the analysis panel (its module loaded on first use); Promise of the panel
   * (``.processes``, ``.choose(id)``, ``.run()``, ``.job``, ``.results``, ``.error``) once
   * the processes are listed. */
  Widget.prototype.openAnalysis = function () {
    var self = this;
    return Promise.all([this.ready, loadAnalysis(this.base)]).then(function (res) {
      var Analysis = res[1];
      if (!self.analysis) self.analysis = new Analysis(self, { el: el });
      return self.analysis.open().then(function () { return self.analysis; });
    });
  };

  /* Open the panel on one process with its form filled from execute inputs (CRS84
   * coordinates); Promise of the panel once the form is built. */
  Widget.prototype.analyse = function (processId, inputs) {
    return this.openAnalysis().then(function (a) {
      return a.choose(processId).then(function () {
        if (a.process && a.process.id === processId) a.prefill(inputs || {});
        return a;
      });
    });
  };

  Widget.prototype.toggleAnalysis = function () {
    if (this.analysis && this.analysis.isOpen) {
      this.analysis.close();
      return Promise.resolve(this.analysis);
    }
    return this.openAnalysis();
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
    this._scheduleViewStats();
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

  /* Move to a search hit (a street office, community or grid by its bbox; a point hit
   * by its position), open its record and, for a drill level, the drill-down there. */
  Widget.prototype.goTo = function (hit) {
    var b = Array.isArray(hit.bbox) && hit.bbox.length === 4 ? hit.bbox : null;
    var at = hit.lon != null && hit.lat != null ? [hit.lon, hit.lat] :
      (b ? [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] : null);
    if (b) this.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 60, maxZoom: 18, duration: 0 });
    else if (at) this.map.jumpTo({ center: at, zoom: 18 });
    if (LEVELS.indexOf(hit.collection) >= 0) this.drill(hit.collection, hit.id, { keepView: !!b });
    return this.showRecord(hit.collection, hit.id, at);
  };

  /* ---- click → popup with the record ---- */

  /* Columns a staff member has no use for: bookkeeping, the synthetic-data flag, user ids. */
  var HIDDEN_FIELDS = { id: 1, version: 1, synthetic: 1, source_key: 1, geom_3857: 1,
    created_at: 1, worker_user_id: 1, reporter_user_id: 1, assignee_user_id: 1 };
  /* A link column → the collection it points into (shown by that record's name). */
  var PARENT_OF = { parent_id: null, node_id: "pipe_node", from_node_id: "pipe_node",
    to_node_id: "pipe_node", segment_id: "pipe_segment", tunnel_id: "utility_tunnel" };
  var OPEN_EVENTS = ["reported", "assigned", "handled"];
  var ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;

  function parentCollection(collection, field) {
    if (field === "parent_id") return collection;
    if (Object.prototype.hasOwnProperty.call(PARENT_OF, field)) return PARENT_OF[field];
    return /_id$/.test(field) ? field.slice(0, -3) : null;
  }

  function isEmpty(v) {
    return v === null || v === undefined || v === "" ||
      (Array.isArray(v) && !v.length) ||
      (typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length);
  }

  /* What to call a record: its name, address, room or number. */
  function recordName(p) {
    if (!p) return null;
    var n = p.name || p.address || p.room_no || p.number || p.code;
    return n != null && n !== "" ? String(n) : null;
  }

  function sumOpen(events) {
    return OPEN_EVENTS.reduce(function (a, k) { return a + ((events || {})[k] || 0); }, 0);
  }

  /* A timestamp in Beijing time, as people write it in the current language. */
  Widget.prototype.formatTime = function (iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    try {
      return d.toLocaleString(this.lang === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai",
        year: "numeric", month: this.lang === "zh" ? "2-digit" : "short", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hour12: false }) + (this.lang === "zh" ? "" : " CST");
    } catch (e) {
      return new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 16).replace("T", " ") + " +08:00";
    }
  };

  /* Promise of a unit's name (GET /collections/{c}/items/{id}), once per unit; null
   * when refused or nameless. */
  Widget.prototype.unitName = function (collection, id) {
    var key = collection + "/" + id;
    if (!this._names[key]) {
      this._names[key] = this.api("/collections/" + encodeURIComponent(collection) + "/items/" +
        encodeURIComponent(id) + "?f=json").then(function (r) {
        return r.ok && r.data ? { name: recordName(r.data.properties), record: r.data } : { name: null };
      });
    }
    return this._names[key].then(function (x) { return x.name; });
  };

  Widget.prototype._onClick = function (e) {
    // the analysis panel takes the click while the map is one of its inputs
    if (this._clickHook && this._clickHook(e)) return;
    var feats = this.map.queryRenderedFeatures(e.point).filter(function (f) {
      return !ownSource(f.source) && f.id != null && f.sourceLayer && !(f.properties && "count" in f.properties);
    });
    var where = [e.lngLat.lng, e.lngLat.lat];
    if (!feats.length) { this.showPlace(where); return; }
    // A name written over the map (a road's, drawn above every layer) is not what was
    // clicked when a record lies under it (a sensor beside the road): labels come last.
    var label = function (f) { return /-label(-|$)/.test(f.layer.id) ? 1 : 0; };
    feats = feats.map(function (f, i) { return { f: f, i: i }; }).sort(function (a, b) {
      return label(a.f) - label(b.f) || a.i - b.i;
    }).map(function (x) { return x.f; });
    var f = feats[0];
    this.showRecord(f.sourceLayer, f.id, where);
  };

  /* Promise of the street office, community and grid a point is in (the locate
   * process), as [{level, id, name}] from the top; [] when none or refused. */
  Widget.prototype.jurisdiction = function (lngLat) {
    return this.api("/processes/locate/execution", { inputs: { x: lngLat[0], y: lngLat[1] } })
      .then(function (r) {
        var loc = r.ok && r.data ? (r.data.location || r.data) : null;
        if (!loc) return [];
        return ["street_office", "community", "grid"].filter(function (l) {
          return loc[l] && loc[l].id != null;
        }).map(function (l) { return { level: l, id: loc[l].id, name: loc[l].name || null }; });
      });
  };

  /* A popup where the map was clicked outside any feature: the units the place is in,
   * each a way into the drill-down. */
  Widget.prototype.showPlace = function (lngLat) {
    var self = this;
    var state = { collection: null, id: null, status: null, properties: null, lngLat: lngLat,
      figures: null, here: null, names: {} };
    this.popupState = state;
    this._renderPopup();
    return this.jurisdiction(lngLat).then(function (here) {
      state.here = here;
      state.status = 200;
      if (self.popupState === state) self._renderPopup();
      return state;
    });
  };

  Widget.prototype.showRecord = function (collection, id, lngLat) {
    var self = this;
    var state = { collection: collection, id: id, status: null, properties: null, lngLat: lngLat,
      figures: null, here: null, names: {} };
    this.popupState = state;
    this._renderPopup();
    var path = "/collections/" + encodeURIComponent(collection) + "/items/" + encodeURIComponent(id) + "?f=json";
    var titles = this.loadFieldTitles(collection, this.lang);
    var rerender = function () { if (self.popupState === state) self._renderPopup(); };
    if (lngLat) this.jurisdiction(lngLat).then(function (here) { state.here = here; rerender(); });
    return Promise.all([this.api(path), titles]).then(function (res) {
      var r = res[0];
      if (self.popupState !== state) return null;
      state.status = r.status;
      state.properties = r.ok && r.data ? (r.data.properties || {}) : null;
      state.geometry = r.ok && r.data ? (r.data.geometry || null) : null;
      if (r.ok && r.data) self._names[collection + "/" + id] = Promise.resolve(
        { name: recordName(state.properties), record: r.data });
      var jobs = [];
      // parents by name: one small request each, cached
      Object.keys(state.properties || {}).forEach(function (k) {
        var v = state.properties[k];
        var parent = parentCollection(collection, k);
        if (!parent || isEmpty(v) || HIDDEN_FIELDS[k]) return;
        jobs.push(self.unitName(parent, v).then(function (name) { state.names[k] = name; rerender(); }));
      });
      if (state.properties) {
        jobs.push(self._figures(collection, id, state.properties).then(function (fig) {
          state.figures = fig;
          rerender();
        }));
      }
      self._renderPopup();
      return Promise.all(jobs).then(function () { return state; });
    });
  };

  /* Promise of {households, residents, openEvents?} of an admin unit, grid, compound or
   * building (grid-statistics), or null for other records. */
  Widget.prototype._figures = function (level, id, record) {
    if (level === "street_office" || level === "community" || level === "grid") {
      return this._stats(level, id).then(function (s) {
        return s.tree ? { households: s.tree.households, residents: s.tree.residents,
          openEvents: sumOpen(s.tree.events) } : null;
      });
    }
    if (level !== "compound" && level !== "building") return Promise.resolve(null);
    var ids = level === "building" ? Promise.resolve([Number(id)]) :
      this.api("/collections/building/items?f=json&limit=500&compound_id=" + encodeURIComponent(id))
        .then(function (r) {
          return ((r.ok && r.data && r.data.features) || []).map(function (f) { return Number(f.id); });
        });
    return Promise.all([ids, this._buildingNodes(record.grid_id)]).then(function (res) {
      if (!res[1]) return null;
      var nodes = res[0].map(function (b) { return res[1][b]; }).filter(Boolean);
      var sum = sumStats(nodes);
      return { households: sum.households, residents: sum.residents };
    }).then(null, function () { return null; });
  };

  /* A record value: a coded value by its label (the stored code as a tooltip); times in
   * Beijing time, lists as labels, yes/no. */
  Widget.prototype._valueNode = function (v, label, collection, field) {
    var self = this;
    if (v === null || v === undefined) return el("span", { className: "onemap-null", text: this.t("nullValue") });
    if (Array.isArray(v)) {
      return el("span", {}, v.map(function (item) {
        var l = collection ? self.valueTitle(collection, field, item) : null;
        return el("span", { className: "onemap-tag", text: l != null ? l : String(item) });
      }));
    }
    if (typeof v === "boolean") return document.createTextNode(this.t(v ? "yes" : "no"));
    if (typeof v === "object") return document.createTextNode(JSON.stringify(v));
    if (label !== null && label !== undefined) return el("span", { text: label, title: String(v) });
    if (typeof v === "string" && ISO_TIME.test(v)) {
      return el("span", { text: this.formatTime(v), title: this.t("beijing") });
    }
    return document.createTextNode(String(v));
  };

  Widget.prototype._renderPopup = function () {
    var self = this;
    var s = this.popupState;
    if (!s || !this.map) return;
    var body = el("div", { testid: "onemap-popup" });
    if (s.collection) {
      var name = recordName(s.properties);
      body.appendChild(el("h4", { text: this.title(s.collection) + (name ? "：" + name : " #" + s.id) }));
    } else {
      body.appendChild(el("h4", { text: this.t("here") }));
    }
    if (s.status === null) body.appendChild(el("div", { text: this.t("loading") }));
    else if (s.collection && !s.properties) {
      body.appendChild(el("div", { className: "onemap-denied", testid: "onemap-popup-denied",
        text: this.t("denied") + " (" + s.status + ")" }));
    } else if (s.properties) {
      if (s.figures) {
        var figs = [["households", s.figures.households], ["residents", s.figures.residents],
          ["openEvents", s.figures.openEvents]].filter(function (f) { return f[1] != null; });
        body.appendChild(el("div", { className: "onemap-figures", testid: "onemap-popup-figures" },
          figs.map(function (f) {
            return el("div", { "data-stat": f[0] }, [el("b", { text: String(f[1]) }), self.t(f[0])]);
          })));
      }
      var table = el("table", { className: "onemap-kv" });
      Object.keys(s.properties).forEach(function (k) {
        var v = s.properties[k];
        if (HIDDEN_FIELDS[k] || isEmpty(v)) return;
        var node;
        if (parentCollection(s.collection, k)) {
          // a parent by its name; the row waits for it, and goes when it has none
          if (!Object.prototype.hasOwnProperty.call(s.names, k)) node = el("span", { className: "onemap-null", text: "…" });
          else if (s.names[k] == null) return;
          else node = document.createTextNode(s.names[k]);
        } else {
          node = self._valueNode(v, self.valueTitle(s.collection, k, v), s.collection, k);
        }
        table.appendChild(el("tr", { "data-field": k }, [el("td", { text: self.fieldTitle(s.collection, k) }),
          el("td", {}, [node])]));
      });
      body.appendChild(table);
    }
    if (s.here && s.here.length) {
      var here = el("div", { className: "onemap-here", testid: "onemap-popup-here" }, [this.t("here") + "："]);
      s.here.forEach(function (u, i) {
        here.appendChild(el("span", { className: "onemap-item", testid: "onemap-popup-unit",
          "data-level": u.level, "data-id": String(u.id),
          text: (i ? " › " : "") + (u.name || self.t(u.level) + " #" + u.id),
          onclick: function () { self.drill(u.level, u.id, { path: s.here.slice(0, i) }); } }));
      });
      body.appendChild(here);
    }
    if (s.collection && LEVELS.indexOf(s.collection) >= 0) {
      body.appendChild(el("button", { className: "onemap-btn", testid: "onemap-popup-drill",
        text: this.t("openDrill"), onclick: function () { self.drill(s.collection, s.id); } }));
    }
    var incident = s.properties ? incidentInputs(s.collection, s.id, s.properties, s.geometry) : null;
    if (incident) {
      body.appendChild(el("button", { className: "onemap-btn", testid: "onemap-popup-incident",
        "data-inputs": JSON.stringify(incident), text: this.t("incident"),
        onclick: function () {
          if (self.popup) self.popup.remove();
          self.analyse(INCIDENT_PROCESS, incident);
        } }));
    }
    if (s.collection === "spill_report" && s.id != null) {
      var trace = { report_ids: [Number(s.id)] };
      body.appendChild(el("button", { className: "onemap-btn", testid: "onemap-popup-trace",
        "data-inputs": JSON.stringify(trace), text: this.t("trace"),
        onclick: function () {
          if (self.popup) self.popup.remove();
          self.analyse(TRACE_PROCESS, trace);
        } }));
    }
    if (!this.popup) {
      this.popup = new window.maplibregl.Popup({ maxWidth: "340px" });
      this.popup.on("close", function () { self.popupState = null; self.popup = null; });
    }
    this.popup.setDOMContent(body);
    if (s.lngLat) this.popup.setLngLat(s.lngLat);
    if (!this.popup.isOpen() && s.lngLat) this.popup.addTo(this.map);
  };

  /* ---- from an alarm to a plan ---- */

  var INCIDENT_PROCESS = "pipeline-incident";
  // A spill report's popup traces it (道路遗撒溯源): suspects, their tracks and sites.
  var TRACE_PROCESS = "spill-trace";
  // The networks the process analyses (its input `utility`'s enum).
  var INCIDENT_UTILITIES = { water: 1, drainage: 1, gas: 1, heat: 1 };

  /* The pipeline-incident inputs a popup's record stands for, or null: a pipe by its id;
   * a lifeline sensor by the pipe it is on (`segment_id`), else by its position and
   * utility, which the server snaps to the nearest pipe of that utility within 100 m.
   * The sensor layer publishes no alarms (sensor_alarm is an internal table, in no
   * collection or tile), so the widget cannot pass an `alarm` id: for a sensor at a node
   * the server's choice for an alarm (the widest pipe ending there) may differ from the
   * nearest pipe taken here; the plan's summary and its `failed` layer say which. */
  function incidentInputs(collection, id, p, geometry) {
    if (collection === "pipe_segment") {
      return INCIDENT_UTILITIES[p.utility] && p.status !== "abandoned" ? { segment: Number(id) } : null;
    }
    if (collection !== "sensor") return null;
    if (p.segment_id != null) return { segment: Number(p.segment_id) };
    if (!INCIDENT_UTILITIES[p.utility] || !geometry || geometry.type !== "Point") return null;
    return { x: geometry.coordinates[0], y: geometry.coordinates[1], utility: p.utility };
  }

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
  Widget.prototype.drill = function (level, id, opts) {
    var self = this;
    opts = opts || {};
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
    if (opts.path) state.path = opts.path.slice();
    var findPath = !state.path.length;  // opened from a popup, a search or the API
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
        self._geometryOf(level, rec.data).then(function (geometry) {
          if (self.panel === state) self._focus(geometry, !opts.keepView);
        });
        if (findPath) {
          // the breadcrumb up from the unit, by its parents' names
          self._ancestors(level, p).then(function (path) {
            if (!state.path.length && path.length) {
              state.path = path;
              if (self.panel === state) self._renderDrill();
            }
          });
        }
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

  /* The parent link of each drill level's record (the first one set wins). */
  var PARENT_KEYS = {
    community: [["street_office_id", "street_office"]],
    grid: [["parent_id", "grid"], ["community_id", "community"]],
    compound: [["grid_id", "grid"]],
    building: [["compound_id", "compound"], ["grid_id", "grid"]],
    unit: [["building_id", "building"]],
    household: [["unit_id", "unit"], ["building_id", "building"]],
    resident: [["household_id", "household"]],
  };

  /* Promise of the units above a record, from the top: [{level, id, name}]. */
  Widget.prototype._ancestors = function (level, record) {
    var self = this;
    var link = (PARENT_KEYS[level] || []).filter(function (k) { return record && record[k[0]] != null; })[0];
    if (!link) return Promise.resolve([]);
    var id = record[link[0]];
    var parentLevel = link[1];
    this.unitName(parentLevel, id);  // starts the request (cached)
    return this._names[parentLevel + "/" + id].then(function (x) {
      var props = x.record ? x.record.properties || {} : null;
      var me = { level: parentLevel, id: Number(id), name: x.name };
      if (!props) return [me];
      return self._ancestors(parentLevel, props).then(function (up) { return up.concat([me]); });
    });
  };

  /* Promise of a record's geometry, or its nearest parent's (a household without a
   * point of its own: its unit's or building's), or null. */
  Widget.prototype._geometryOf = function (level, feature) {
    var self = this;
    if (!feature) return Promise.resolve(null);
    if (feature.geometry) return Promise.resolve(feature.geometry);
    var record = feature.properties || {};
    var link = (PARENT_KEYS[level] || []).filter(function (k) { return record[k[0]] != null; })[0];
    if (!link) return Promise.resolve(null);
    this.unitName(link[1], record[link[0]]);
    return this._names[link[1] + "/" + record[link[0]]].then(function (x) {
      return self._geometryOf(link[1], x.record || null);
    });
  };

  /* Move to a unit's geometry and outline it (a GeoJSON layer above the style's). */
  Widget.prototype._focus = function (geometry, move) {
    if (!this.map || !geometry) return;
    var box = [Infinity, Infinity, -Infinity, -Infinity];
    (function walk(c) {
      if (typeof c[0] === "number") {
        box[0] = Math.min(box[0], c[0]); box[1] = Math.min(box[1], c[1]);
        box[2] = Math.max(box[2], c[0]); box[3] = Math.max(box[3], c[1]);
      } else c.forEach(walk);
    })(geometry.coordinates || []);
    if (!(box[0] <= box[2])) return;
    var data = { type: "Feature", geometry: geometry, properties: {} };
    var src = this.map.getSource("onemap-highlight");
    if (src) src.setData(data);
    else {
      this.map.addSource("onemap-highlight", { type: "geojson", data: data });
      this.map.addLayer({ id: "onemap-highlight-fill", type: "fill", source: "onemap-highlight",
        filter: ["==", ["geometry-type"], "Polygon"],
        paint: { "fill-color": "#ffd400", "fill-opacity": 0.18 } });
      this.map.addLayer({ id: "onemap-highlight-line", type: "line", source: "onemap-highlight",
        paint: { "line-color": "#ff6a00", "line-width": 3 } });
      this.map.addLayer({ id: "onemap-highlight-point", type: "circle", source: "onemap-highlight",
        filter: ["==", ["geometry-type"], "Point"],
        paint: { "circle-radius": 9, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#ff6a00",
          "circle-stroke-width": 3 } });
    }
    this.highlighted = geometry;
    if (move === false) return;
    if (box[0] === box[2] && box[1] === box[3]) this.map.easeTo({ center: [box[0], box[1]], zoom: Math.max(this.map.getZoom(), 17), duration: 300 });
    else this.map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 60, maxZoom: 18, duration: 300 });
  };

  Widget.prototype._clearFocus = function () {
    var src = this.map && this.map.getSource("onemap-highlight");
    if (src) src.setData({ type: "FeatureCollection", features: [] });
    this.highlighted = null;
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
        onclick: function () { self.panel = null; self._clearFocus(); self._renderDrill(); } }),
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
    // After the map is idle: every tile of the view drawn, so counted, and no tile
    // request waiting behind the statistics process.
    this._viewTimer = setTimeout(function () {
      if (!self.map) return;
      // the next idle: after a repaint, so that a layer just switched is counted as drawn
      self.map.once("idle", function () { self.viewStats(); });
      self.map.triggerRepaint();
    }, 400);
  };

  /* The identity of a feature without an id (an aggregate cell): its properties and
   * first coordinate. */
  function featureKey(f) {
    var g = f.geometry || {};
    var c = g.coordinates;
    while (Array.isArray(c) && Array.isArray(c[0])) c = c[0];
    return JSON.stringify(f.properties || {}) + "@" + (Array.isArray(c) ? c.map(function (v) {
      return Math.round(v * 1e5); }).join(",") : "");
  }

  Widget.prototype.viewStats = function () {
    var self = this;
    if (!this.map) return Promise.resolve(null);
    // Each feature once: a source layer drawn by several style layers (fill and
    // outline, circle and label) and a polygon cut at tile edges come back once per
    // style layer and tile. queryRenderedFeatures returns visible layers only, so the
    // figures follow the switcher.
    var counts = {};
    this.map.queryRenderedFeatures().forEach(function (f) {
      if (ownSource(f.source)) return;
      var key = f.sourceLayer || f.layer.id;
      var p = f.properties || {};
      var n = typeof p.count === "number" ? p.count : 1;
      counts[key] = counts[key] || { ids: {}, n: 0 };
      var fid = f.source + "|" + (f.id != null ? f.id : featureKey(f));
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
    if (this.timing.statsStart == null) this.timing.statsStart = performance.now();
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
