/* The grid worker's mobile map (/m/). No framework, no build step.
 *
 * - Sign in (POST /auth/login); the token is kept in localStorage and sent as
 *   "Authorization: Bearer" with every API request and tile (transformRequest).
 * - "My grid": the units of the worker's data scope (GET /auth/me), their
 *   compounds, buildings, households and residents — whatever the API returns:
 *   scope and masking are the server's (PostgreSQL row-level security).
 * - Find a household: a /search hit is marked on the map and, for a household,
 *   shown as a card (address, building, unit, room, residents as the API gives them).
 * - Report an event (随手拍): every report is first written to IndexedDB with a
 *   client_uuid fixed at creation, then sent in order: POST the event (a resend
 *   with the same client_uuid answers 200 with the stored event), then the photo
 *   (the same bytes on the same event answer 200 with the stored photo). A report
 *   leaves the queue only when both are acknowledged, so a dropped connection at
 *   any step means a resend, never a loss or a duplicate. The answer is a
 *   confirmation card: event number, grid and community, photo sent or waiting.
 * - My events: tap one for its status, its history and its photos.
 * - One language at a time (zh default, en), every UI string in STRINGS; the
 *   choice is kept in localStorage.
 * - window.onemapMobile exposes {ready, queueLength(), lastSubmitted, flush(), map,
 *   whenMapReady(), lang, setLang()} for the browser tests.
 */
(function () {
  "use strict";

  var BASE = location.origin;
  var TOKEN_KEY = "onemap.mobile.token";
  var LANG_KEY = "onemap.mobile.lang";
  var DB_NAME = "onemap-mobile";
  var STORE = "reports";
  var MAX_SIDE = 1600;
  var CRS_URI = { 4326: "http://www.opengis.net/def/crs/EPSG/0/4326",
                  4490: "http://www.opengis.net/def/crs/EPSG/0/4490" };
  // onemap.event.category (020_events.sql), in the order a worker meets them;
  // their labels are STRINGS["cat." + code].
  var CATEGORIES = ["sanitation", "city_appearance", "municipal_facility", "road_traffic",
                    "street_order", "construction", "advertising", "greening", "safety_hazard",
                    "dispute", "livelihood", "emergency", "other"];

  // ------------------------------------------------------------------ strings

  /* Every string the UI shows, per language. "{0}" … are filled by t(key, args). */
  var STRINGS = {
    zh: {
      "app.title": "网格员", "doc.title": "网格员 · onemap",
      "net.online": "在线", "net.offline": "离线", "queue.count": "待发 {0}",
      "lang.switch": "EN", "lang.switch.label": "Switch to English", "logout": "退出",
      "login.title": "登录", "login.username": "用户名", "login.password": "密码",
      "login.submit": "登录", "login.failed": "用户名或密码错误",
      "login.offline": "离线，无法登录", "login.expired": "登录已过期，请重新登录",
      "login.again": "请重新登录",
      "map.loading": "地图加载中…", "map.unavailable": "地图无法加载：{0}",
      "map.tap": "请在地图上点选事件位置", "locate.me": "我的位置", "close": "关闭",
      "tab.grid": "网格", "tab.search": "找户", "tab.report": "随手拍", "tab.events": "事件",
      "grid.title": "我的网格", "grid.noscope": "没有数据范围",
      "level.grid": "网格", "level.community": "社区", "level.street_office": "街道",
      "level.district": "区",
      "group.compound": "小区（{0}）", "group.building": "楼栋（{0}）",
      "group.household": "户（{0}）", "group.resident": "居民（{0}）",
      "group.loading": "…", "group.denied": "无权查看", "group.failed": "无法读取：{0}",
      "occupancy.owner": "自住", "occupancy.tenant": "出租", "occupancy.vacant": "空置",
      "occupancy.unknown": "未知",
      "gender.male": "男", "gender.female": "女",
      "tag.elderly_alone": "独居老人", "tag.empty_nest": "空巢老人", "tag.disabled": "残疾人",
      "tag.low_income": "低保", "tag.extreme_poverty": "特困", "tag.key_person": "重点人员",
      "tag.veteran": "退役军人", "tag.child_left_behind": "留守儿童",
      "tag.floating_population": "流动人口", "tag.party_member": "党员", "tag.volunteer": "志愿者",
      "born.year": "{0} 年生",
      "search.title": "找户", "search.placeholder": "地址、楼号或户号", "search.go": "搜索",
      "search.back": "‹ 搜索结果", "search.none": "没有结果", "search.failed": "搜索失败：{0}",
      "type.household": "户", "type.building": "楼栋", "type.address": "地址",
      "type.compound": "小区", "type.alley": "街巷",
      "card.address": "地址", "card.building": "楼栋", "card.unit": "单元", "card.room": "户号",
      "card.floor": "楼层", "card.area": "面积", "card.occupancy": "居住",
      "card.residents": "居民", "card.residents.count": "{0} 人",
      "card.residents.hidden": "无权查看居民", "card.loading": "加载中…",
      "card.failed": "无法读取：{0}", "card.unit.n": "{0} 单元", "card.floor.n": "{0} 层",
      "card.floors.n": "{0} 层", "card.type": "类型", "card.name": "名称",
      "report.title": "随手拍", "report.category": "类型", "report.photo": "照片",
      "report.photo.take": "拍照", "report.photo.retake": "重拍", "report.description": "描述",
      "report.description.placeholder": "例如：垃圾桶满溢", "report.gps": "用GPS位置",
      "report.tap": "在地图点选", "report.noposition": "未选位置", "report.locating": "定位中…",
      "report.position.gps": "GPS ±{0} m：{1}, {2}（EPSG:4326，服务器换算为 CGCS2000）",
      "report.position.tap": "地图点选：{0}, {1}（EPSG:4490）",
      "report.locate.offline": "离线：网格由服务器按位置分配",
      "report.locate.busy": "定位网格…", "report.locate.failed": "网格由服务器按位置分配（{0}）",
      "locate.grid": "网格 {0}", "locate.community": "社区 {0}", "locate.street_office": "街道 {0}",
      "locate.outside": "不在任何网格",
      "report.submit": "提交", "report.nopos": "请先选择位置", "report.sending": "发送中…",
      "report.saved.offline": "已保存，联网后自动发送", "report.done": "已上报",
      "report.savefailed": "保存失败：{0}", "report.photo.failed": "照片无法读取：{0}",
      "done.sent": "上报成功", "done.queued": "已保存在手机上", "done.failed": "上报被拒绝",
      "done.queued.note": "联网后自动发送：不会丢失，也不会重复。", "done.number": "事件编号", "done.grid": "网格", "done.community": "社区",
      "done.photo": "照片", "done.by.server": "联网后由服务器按位置分配",
      "photo.uploaded": "已上传", "photo.queued": "待上传（联网后自动发送）", "photo.none": "无",
      "done.another": "再报一件", "done.events": "查看我的事件",
      "events.title": "我的事件", "events.none": "还没有事件", "events.back": "‹ 我的事件",
      "events.discard": "删除", "events.failed": "无法读取事件：{0}",
      "status.reported": "已上报", "status.assigned": "已派遣", "status.handled": "已处置",
      "status.closed": "已结案", "status.evaluated": "已评价", "status.pending": "待发送",
      "status.failed": "发送失败",
      "detail.status": "状态", "detail.number": "编号", "detail.reported": "上报时间",
      "detail.description": "描述", "detail.history": "流转记录", "detail.photos": "照片",
      "detail.nophoto": "没有照片", "detail.photo.local": "照片在手机上，待上传",
      "hist.reported": "上报", "hist.received": "服务器收到", "hist.current": "当前状态：{0}", "hist.changed": "转为：{0}",
      "hist.evaluated": "评价：{0} 分", "hist.pending": "保存在手机上，待发送",
      "gps.note": "GPS 为 WGS84 坐标，以 EPSG:4326 发送，由服务器换算为 CGCS2000 (EPSG:4490)",
      "gps.locating": "定位中…", "gps.accuracy": "±{0} m", "gps.none": "无法定位：{0}",
      "cat.sanitation": "环境卫生", "cat.city_appearance": "市容环境",
      "cat.municipal_facility": "市政设施", "cat.road_traffic": "道路交通",
      "cat.street_order": "街面秩序", "cat.construction": "施工管理", "cat.advertising": "广告招牌",
      "cat.greening": "园林绿化", "cat.safety_hazard": "安全隐患", "cat.dispute": "矛盾纠纷",
      "cat.livelihood": "民生服务", "cat.emergency": "突发事件", "cat.other": "其他"
    },
    en: {
      "app.title": "Grid worker", "doc.title": "Grid worker · onemap",
      "net.online": "Online", "net.offline": "Offline", "queue.count": "{0} queued",
      "lang.switch": "中文", "lang.switch.label": "切换到中文", "logout": "Sign out",
      "login.title": "Sign in", "login.username": "User name", "login.password": "Password",
      "login.submit": "Sign in", "login.failed": "Wrong user name or password",
      "login.offline": "Offline: cannot sign in", "login.expired": "Session expired: sign in again",
      "login.again": "Please sign in again",
      "map.loading": "Loading map…", "map.unavailable": "Map unavailable: {0}",
      "map.tap": "Tap the event's place on the map", "locate.me": "My position", "close": "Close",
      "tab.grid": "My grid", "tab.search": "Find", "tab.report": "Report", "tab.events": "Events",
      "grid.title": "My grid", "grid.noscope": "No data scope assigned",
      "level.grid": "grid", "level.community": "community", "level.street_office": "street office",
      "level.district": "district",
      "group.compound": "Compounds ({0})", "group.building": "Buildings ({0})",
      "group.household": "Households ({0})", "group.resident": "Residents ({0})",
      "group.loading": "…", "group.denied": "not permitted", "group.failed": "cannot load: {0}",
      "occupancy.owner": "owner-occupied", "occupancy.tenant": "rented", "occupancy.vacant": "vacant",
      "occupancy.unknown": "unknown",
      "gender.male": "male", "gender.female": "female",
      "tag.elderly_alone": "elderly, alone", "tag.empty_nest": "empty nest", "tag.disabled": "disabled",
      "tag.low_income": "low income", "tag.extreme_poverty": "extreme poverty",
      "tag.key_person": "key person", "tag.veteran": "veteran", "tag.child_left_behind": "child left behind",
      "tag.floating_population": "floating population", "tag.party_member": "party member",
      "tag.volunteer": "volunteer", "born.year": "born {0}",
      "search.title": "Find a household", "search.placeholder": "Address, building or room no.",
      "search.go": "Search", "search.back": "‹ Results", "search.none": "Nothing found", "search.failed": "Search failed: {0}",
      "type.household": "household", "type.building": "building", "type.address": "address",
      "type.compound": "compound", "type.alley": "alley",
      "card.address": "Address", "card.building": "Building", "card.unit": "Unit", "card.room": "Room",
      "card.floor": "Floor", "card.area": "Area", "card.occupancy": "Occupancy",
      "card.residents": "Residents", "card.residents.count": "{0} people",
      "card.residents.hidden": "Residents not visible to you", "card.loading": "Loading…",
      "card.failed": "Cannot load: {0}", "card.unit.n": "unit {0}", "card.floor.n": "floor {0}",
      "card.floors.n": "{0} floors", "card.type": "Type", "card.name": "Name",
      "report.title": "Report an event", "report.category": "Type", "report.photo": "Photo",
      "report.photo.take": "Take photo", "report.photo.retake": "Retake",
      "report.description": "Description", "report.description.placeholder": "e.g. overflowing bin",
      "report.gps": "Use GPS", "report.tap": "Tap on map", "report.noposition": "No position yet",
      "report.locating": "Locating…",
      "report.position.gps": "GPS ±{0} m: {1}, {2} (EPSG:4326, converted to CGCS2000 by the server)",
      "report.position.tap": "Tapped on the map: {0}, {1} (EPSG:4490)",
      "report.locate.offline": "Offline: the server assigns the grid",
      "report.locate.busy": "Finding the grid…", "report.locate.failed": "The server assigns the grid ({0})",
      "locate.grid": "Grid {0}", "locate.community": "Community {0}",
      "locate.street_office": "Street office {0}", "locate.outside": "Outside every grid",
      "report.submit": "Submit", "report.nopos": "Choose the position first",
      "report.sending": "Sending…", "report.saved.offline": "Saved: sent when back online",
      "report.done": "Reported", "report.savefailed": "Could not save: {0}",
      "report.photo.failed": "Cannot read the photo: {0}",
      "done.sent": "Report sent", "done.queued": "Saved on this phone", "done.failed": "Report refused",
      "done.queued.note": "Sent by itself when back online: never lost, never sent twice.",
      "done.number": "Event no.", "done.grid": "Grid", "done.community": "Community",
      "done.photo": "Photo", "done.by.server": "assigned by the server when it arrives",
      "photo.uploaded": "uploaded", "photo.queued": "waiting (sent when back online)", "photo.none": "none",
      "done.another": "Report another", "done.events": "My events",
      "events.title": "My events", "events.none": "No events yet", "events.back": "‹ My events",
      "events.discard": "Discard", "events.failed": "Cannot load the event: {0}",
      "status.reported": "Reported", "status.assigned": "Assigned", "status.handled": "Handled",
      "status.closed": "Closed", "status.evaluated": "Evaluated", "status.pending": "Waiting to send",
      "status.failed": "Failed",
      "detail.status": "Status", "detail.number": "No.", "detail.reported": "Reported at",
      "detail.description": "Description", "detail.history": "Status history", "detail.photos": "Photos",
      "detail.nophoto": "No photo", "detail.photo.local": "Photo on the phone, waiting to upload",
      "hist.reported": "Reported", "hist.received": "Received by the server", "hist.current": "Now: {0}", "hist.changed": "Changed to: {0}",
      "hist.evaluated": "Evaluated: {0}/5", "hist.pending": "Kept on the phone, waiting to send",
      "gps.note": "GPS gives WGS84: sent as EPSG:4326, the server converts it to CGCS2000 (EPSG:4490)",
      "gps.locating": "Locating…", "gps.accuracy": "±{0} m", "gps.none": "No position: {0}",
      "cat.sanitation": "Sanitation", "cat.city_appearance": "City appearance",
      "cat.municipal_facility": "Municipal facility", "cat.road_traffic": "Road & traffic",
      "cat.street_order": "Street order", "cat.construction": "Construction",
      "cat.advertising": "Advertising", "cat.greening": "Greening", "cat.safety_hazard": "Safety hazard",
      "cat.dispute": "Dispute", "cat.livelihood": "Livelihood", "cat.emergency": "Emergency",
      "cat.other": "Other"
    }
  };
  var LANGS = ["zh", "en"];
  var lang = LANGS.indexOf(localStorage.getItem(LANG_KEY)) >= 0 ? localStorage.getItem(LANG_KEY) : "zh";

  /* The string `key` in the current language, "{n}" replaced by args[n]; an
   * argument {k: key} is itself translated. A key missing from the table shows
   * as itself (a data value such as an unknown status). */
  function t(key, args) {
    var s = STRINGS[lang][key];
    if (s === undefined) { s = STRINGS.zh[key] !== undefined ? STRINGS.zh[key] : key; }
    return String(s).replace(/\{(\d+)\}/g, function (m, i) {
      var a = args ? args[Number(i)] : "";
      if (a && typeof a === "object" && a.k) { return t(a.k, a.args); }
      return a === null || a === undefined ? "" : String(a);
    });
  }

  /* Put the translated `key` in `node` and remember it, so that a language
   * switch re-renders it. */
  function say(node, key, args) {
    node.setAttribute("data-i18n", key);
    if (args && args.length) { node.setAttribute("data-i18n-args", JSON.stringify(args)); }
    else { node.removeAttribute("data-i18n-args"); }
    node.textContent = t(key, args);
    return node;
  }

  function fmtTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso || ""); }
    return d.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
      { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }

  /* A <time> element; a language switch reformats it. */
  function timeEl(iso) {
    var e = el("time", { datetime: iso || "" });
    e.textContent = fmtTime(iso);
    return e;
  }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("doc.title");
    document.querySelectorAll("[data-i18n]").forEach(function (n) {
      var a = n.getAttribute("data-i18n-args");
      n.textContent = t(n.getAttribute("data-i18n"), a ? JSON.parse(a) : null);
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (n) {
      n.setAttribute("placeholder", t(n.getAttribute("data-i18n-placeholder")));
    });
    document.querySelectorAll("[data-i18n-label]").forEach(function (n) {
      n.setAttribute("aria-label", t(n.getAttribute("data-i18n-label")));
      n.setAttribute("title", t(n.getAttribute("data-i18n-label")));
    });
    document.querySelectorAll("time[datetime]").forEach(function (n) {
      n.textContent = fmtTime(n.getAttribute("datetime"));
    });
    $("lang").setAttribute("lang", lang === "zh" ? "en" : "zh-CN");
  }

  function setLang(l) {
    if (LANGS.indexOf(l) < 0) { throw new Error("unknown language " + l); }
    lang = l;
    api.lang = l;
    localStorage.setItem(LANG_KEY, l);
    applyLang();
  }

  var $ = function (id) { return document.getElementById(id); };
  var state = { token: localStorage.getItem(TOKEN_KEY), me: null, map: null,
                position: null, picking: false, units: [], names: {} };
  // client_uuid -> {event_id, photo_id}: reports the server acknowledged this session
  var sent = {};
  var api = {
    lastSubmitted: null,
    map: null,
    lang: lang,
    setLang: function (l) { setLang(l); },
    queueLength: function () { return dbAll().then(function (r) { return r.length; }); },
    flush: function () { return flush(); },
    ready: null,
    /* Resolves when the map has loaded and the worker's grid is drawn and listed. */
    whenMapReady: function () { return mapReady; }
  };
  var mapReadyResolve;
  var mapReady = new Promise(function (r) { mapReadyResolve = r; });
  window.onemapMobile = api;

  // ------------------------------------------------------------------ helpers

  function uuid4() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  /* A <dl> of [label key, value or node] pairs; rows without a value are left out. */
  function facts(rows) {
    var dl = el("dl", { "class": "facts" });
    rows.forEach(function (r) {
      if (r[1] === null || r[1] === undefined || r[1] === "") { return; }
      dl.appendChild(say(el("dt"), r[0]));
      var dd = el("dd", r[2] ? { "data-testid": r[2] } : {});
      if (r[1] instanceof Node) { dd.appendChild(r[1]); } else { dd.textContent = String(r[1]); }
      dl.appendChild(dd);
    });
    return dl;
  }

  function authHeaders(extra) {
    var h = extra || {};
    if (state.token) { h.Authorization = "Bearer " + state.token; }
    return h;
  }

  /* Read a response's body to its end. A body nobody reads is cancelled by
   * Chromium when the Response is dropped, and the request then shows in the
   * browser's log as net::ERR_ABORTED although the server answered 201. */
  function drain(resp) {
    return resp.arrayBuffer().catch(function () { return null; });
  }

  /* The path and query of an href the server gave (its own absolute URL). */
  function localPath(href) {
    try { var u = new URL(href, BASE); return u.pathname + u.search; } catch (e) { return href; }
  }

  function request(path, options) {
    options = options || {};
    options.headers = authHeaders(options.headers);
    return fetch(BASE + path, options).then(function (r) {
      if (r.status === 401 && state.token && path.indexOf("/auth/login") !== 0) {
        drain(r);
        signOut("login.expired");
      }
      return r;
    });
  }

  function json(path, options) {
    return request(path, options).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          var err = new Error(b.description || ("HTTP " + r.status));
          err.status = r.status;
          throw err;
        });
      }
      return r.json();
    });
  }

  /* A feature's name by collection and id, fetched once. */
  function nameOf(collection, id) {
    if (id === null || id === undefined) { return Promise.resolve(null); }
    var key = collection + "/" + id;
    if (!state.names[key]) {
      state.names[key] = json("/collections/" + collection + "/items/" + id + "?f=json")
        .then(function (f) { return f.properties.name || f.properties.code || String(id); })
        .catch(function () { delete state.names[key]; return null; });
    }
    return state.names[key];
  }

  function setNet() {
    var on = navigator.onLine;
    var n = $("net");
    say(n, on ? "net.online" : "net.offline");
    n.classList.toggle("offline", !on);
  }

  // ---------------------------------------------------------------- IndexedDB

  var dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve, reject) {
        var open = indexedDB.open(DB_NAME, 1);
        open.onupgradeneeded = function () {
          open.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
        };
        open.onsuccess = function () { resolve(open.result); };
        open.onerror = function () { reject(open.error); };
      });
    }
    return dbPromise;
  }

  function tx(mode, fn) {
    return db().then(function (d) {
      return new Promise(function (resolve, reject) {
        var t = d.transaction(STORE, mode);
        var out = fn(t.objectStore(STORE));
        t.oncomplete = function () { resolve(out && out.result !== undefined ? out.result : out); };
        t.onerror = function () { reject(t.error); };
        t.onabort = function () { reject(t.error); };
      });
    });
  }
  function dbAll() { return tx("readonly", function (s) { return s.getAll(); }); }
  function dbPut(rec) {
    return tx("readwrite", function (s) { return s.put(rec); }).then(function (key) {
      rec.seq = key;  // a later put of the same object updates, never adds
      return showQueue().then(function () { return key; });
    });
  }
  function dbDelete(seq) {
    return tx("readwrite", function (s) { return s.delete(seq); }).then(showQueue);
  }

  function showQueue() {
    return dbAll().then(function (rows) {
      var q = $("queue");
      q.hidden = rows.length === 0;
      say(q, "queue.count", [rows.length]);
      return rows;
    });
  }

  // ------------------------------------------------------------ sending queue

  var flushing = null;
  var flushAgain = false;

  /* Send every queued report, oldest first. Resolves when the queue is empty or
   * the network/server stopped us; never rejects. */
  function flush() {
    if (flushing) { flushAgain = true; return flushing; }
    flushing = (function loop() {
      flushAgain = false;
      return dbAll().then(function (rows) {
        rows = rows.filter(function (r) { return r.state !== "failed"; });
        var chain = Promise.resolve(true);
        rows.forEach(function (rec) {
          chain = chain.then(function (go) { return go ? sendOne(rec) : false; });
        });
        return chain;
      }).then(function (allSent) {
        if (allSent && flushAgain) { return loop(); }
        return allSent;
      });
    })().catch(function (e) {
      console.warn("onemap: queue flush stopped", e);
      return false;
    }).then(function (done) {
      flushing = null;
      showQueue();
      if (!$("panel-events").hidden) { loadMyEvents(); }
      refreshConfirmation();
      return done;
    });
    return flushing;
  }

  /* One report: event (idempotent by client_uuid), then photo (idempotent by
   * sha256). Resolves true to go on with the next one, false to stop. */
  function sendOne(rec) {
    if (!state.token) { return Promise.resolve(false); }
    var step = rec.event_id ? Promise.resolve(rec) : postEvent(rec);
    return step.then(function (r) {
      if (!r || !r.event_id) { return false; }
      if (!r.photo) { return finish(r, null); }
      return request("/collections/event/items/" + r.event_id + "/photos", {
        method: "POST", headers: { "Content-Type": r.photo.type || "image/jpeg" }, body: r.photo
      }).then(function (resp) {
        if (resp.status === 200 || resp.status === 201) {
          return resp.json().then(function (p) { return finish(r, p.id); });
        }
        return refuse(r, resp);
      });
    }).catch(function (e) {
      // fetch rejects when the network is gone: keep the report, try later.
      console.info("onemap: report kept for later", rec.client_uuid, e && e.message);
      return false;
    });
  }

  function postEvent(rec) {
    var lat = rec.lat, lon = rec.lon;
    // EPSG:4326 and EPSG:4490 are latitude first as EPSG declares them.
    var feature = { type: "Feature", geometry: { type: "Point", coordinates: [lat, lon] },
                    properties: { client_uuid: rec.client_uuid, source: "grid_worker",
                                  category: rec.category, description: rec.description || null,
                                  reported_at: rec.created_at } };
    if (rec.reporter_user_id) { feature.properties.reporter_user_id = rec.reporter_user_id; }
    return request("/collections/event/items", {
      method: "POST",
      headers: { "Content-Type": "application/geo+json",
                 "Content-Crs": "<" + CRS_URI[rec.crs] + ">" },
      body: JSON.stringify(feature)
    }).then(function (resp) {
      if (resp.status === 200 || resp.status === 201) {
        var loc = resp.headers.get("Location") || "";
        // The body is read to its end (empty for 201): see drain().
        return drain(resp).then(function () {
          rec.event_id = Number(loc.split("/").pop());
          return dbPut(rec);
        }).then(function () { return rec; });
      }
      return refuse(rec, resp);
    });
  }

  function refuse(rec, resp) {
    if (resp.status === 401 || resp.status >= 500 || resp.status === 429) {
      drain(resp);
      return false;  // sign in again / server trouble: keep it queued, in order
    }
    return resp.json().catch(function () { return {}; }).then(function (b) {
      rec.state = "failed";
      rec.error = (b.description || ("HTTP " + resp.status));
      return dbPut(rec).then(function () { return true; });  // go on with the next
    });
  }

  function finish(rec, photoId) {
    // The server has both: record it before the queue shrinks, so a reader
    // that sees the queue empty also sees this report as submitted.
    sent[rec.client_uuid] = { event_id: rec.event_id, photo_id: photoId };
    api.lastSubmitted = { client_uuid: rec.client_uuid, event_id: rec.event_id,
                          photo_id: photoId, category: rec.category,
                          grid: rec.grid || null, community: rec.community || null };
    return dbDelete(rec.seq).then(function () { return true; });
  }

  // ------------------------------------------------------------------- login

  function showLogin(messageKey) {
    $("map-view").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    var e = $("login-error");
    if (messageKey) { say(e, messageKey); } else { e.removeAttribute("data-i18n"); e.textContent = ""; }
  }

  function signOut(messageKey) {
    var token = state.token;
    state.token = null;
    state.me = null;
    localStorage.removeItem(TOKEN_KEY);
    if (token && messageKey === undefined) {
      fetch(BASE + "/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + token } })
        .then(drain).catch(function () {});
    }
    // Cached tiles hold this worker's scoped data: another user must not see them.
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({ type: "signed-out" });
    }
    showLogin(messageKey);
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var err = $("login-error");
    err.removeAttribute("data-i18n");
    err.textContent = "";
    fetch(BASE + "/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: f.username.value.trim(), password: f.password.value })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (!r.ok) {
          var e = new Error(b.description || "");
          e.status = r.status;
          throw e;
        }
        state.token = b.access_token;
        localStorage.setItem(TOKEN_KEY, state.token);
        f.password.value = "";
        return start();
      });
    }).catch(function (e) {
      if (!navigator.onLine) { say(err, "login.offline"); }
      else if (e.status === 401 || e.status === 403 || !e.message) { say(err, "login.failed"); }
      else { err.removeAttribute("data-i18n"); err.textContent = e.message; }
    });
  });
  $("logout").addEventListener("click", function () { signOut(); });
  $("lang").addEventListener("click", function () { setLang(lang === "zh" ? "en" : "zh"); });

  // --------------------------------------------------------------------- map

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = el("script", { src: src });
      s.onload = resolve; s.onerror = function () { reject(new Error("cannot load " + src)); };
      document.head.appendChild(s);
    });
  }

  function transformRequest(url) {
    if (url.indexOf(BASE) === 0 && state.token) {
      return { url: url, headers: { Authorization: "Bearer " + state.token } };
    }
    return { url: url };
  }

  function loadStyle() {
    return request("/styles/grid_management?f=mapbox").then(function (r) {
      if (!r.ok) { drain(r); throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  function mapStatus(key, args) {
    var s = $("map-status");
    if (key) { say(s, key, args); } else { s.removeAttribute("data-i18n"); s.textContent = ""; }
  }

  function startMap() {
    if (state.map) { return Promise.resolve(state.map); }
    mapStatus("map.loading");
    // The shell is on screen; MapLibre (the heavy part) comes after it.
    var css = el("link", { rel: "stylesheet", href: "/static/maplibre-gl/maplibre-gl.css" });
    document.head.appendChild(css);
    return Promise.all([loadScript("/static/maplibre-gl/maplibre-gl.js"), loadStyle()])
      .then(function (got) {
        var style = got[1];
        var map = new maplibregl.Map({
          container: "map", style: style, center: [116.47, 39.92], zoom: 14,
          transformRequest: transformRequest, attributionControl: false,
          localIdeographFontFamily: "'Noto Sans CJK SC', 'WenQuanYi Zen Hei', 'PingFang SC', sans-serif"
        });
        state.map = map; api.map = map;
        map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
        return new Promise(function (resolve) {
          map.on("load", function () {
            addOverlays(map);
            mapStatus(null);
            resolve(map);
          });
          map.on("error", function (e) { console.warn("onemap map:", e && e.error && e.error.message); });
          map.on("click", function (e) {
            if (state.picking) {
              state.picking = false;
              mapStatus(null);
              setPosition(e.lngLat.lng, e.lngLat.lat, 4490, null);
              openPanel("report");
            }
          });
        });
      }).catch(function (e) {
        mapStatus("map.unavailable", [e.message]);
        throw e;
      });
  }

  var EMPTY = { type: "FeatureCollection", features: [] };
  function addOverlays(map) {
    map.addSource("mygrid", { type: "geojson", data: EMPTY });
    map.addLayer({ id: "mygrid-line", type: "line", source: "mygrid",
                   paint: { "line-color": "#d9480f", "line-width": 3 } });
    map.addSource("me", { type: "geojson", data: EMPTY });
    map.addLayer({ id: "me", type: "circle", source: "me",
                   paint: { "circle-radius": 8, "circle-color": "#1c7ed6",
                            "circle-stroke-color": "#fff", "circle-stroke-width": 3 } });
    map.addSource("pick", { type: "geojson", data: EMPTY });
    map.addLayer({ id: "pick", type: "circle", source: "pick",
                   paint: { "circle-radius": 9, "circle-color": "rgba(0,0,0,0)",
                            "circle-stroke-color": "#d9480f", "circle-stroke-width": 3 } });
    // the search hit: a red pin-like dot with a white ring, above everything
    map.addSource("hit", { type: "geojson", data: EMPTY });
    map.addLayer({ id: "hit-halo", type: "circle", source: "hit",
                   paint: { "circle-radius": 18, "circle-color": "rgba(200,30,30,0.22)" } });
    map.addLayer({ id: "hit", type: "circle", source: "hit",
                   paint: { "circle-radius": 9, "circle-color": "#c81e1e",
                            "circle-stroke-color": "#fff", "circle-stroke-width": 3 } });
  }

  function point(lon, lat, props) {
    return { type: "FeatureCollection",
             features: [{ type: "Feature", properties: props || {},
                          geometry: { type: "Point", coordinates: [lon, lat] } }] };
  }

  function bboxOf(geom) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    (function walk(c) {
      if (typeof c[0] === "number") {
        b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
        b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
      } else { c.forEach(walk); }
    })(geom.coordinates);
    return b;
  }

  /* Pixels of the map the open sheet covers (0 when it is closed). */
  function sheetCover() {
    var s = $("sheet");
    return s.hidden ? 0 : s.getBoundingClientRect().height;
  }

  // ----------------------------------------------------------------- my grid

  var SCOPE_COLLECTIONS = { grid: "grid", community: "community",
                            street_office: "street_office", district: "district" };

  function loadMyGrid() {
    var scope = (state.me && state.me.data_scope) || [];
    var summary = $("grid-summary");
    summary.textContent = "";
    if (!scope.length) {
      summary.appendChild(say(el("p", { "class": "hint" }), "grid.noscope"));
      return Promise.resolve();
    }
    return Promise.all(scope.map(function (u) {
      var coll = SCOPE_COLLECTIONS[u.level];
      if (!coll) { return null; }
      return json("/collections/" + coll + "/items/" + u.unit_id + "?f=json")
        .then(function (f) { f.level = u.level; return f; })
        .catch(function () { return null; });
    })).then(function (units) {
      units = units.filter(Boolean);
      state.units = units;
      units.forEach(function (f) {
        var p = el("p", { "data-testid": "grid-name" });
        p.appendChild(el("strong", {}, f.properties.name || f.properties.code || f.id));
        p.appendChild(document.createTextNode(" · "));
        p.appendChild(say(el("span"), "level." + f.level));
        summary.appendChild(p);
      });
      if (state.map && units.length) {
        state.map.getSource("mygrid").setData({ type: "FeatureCollection", features: units });
        var b = units.map(function (f) { return bboxOf(f.geometry); }).reduce(function (a, c) {
          return [Math.min(a[0], c[0]), Math.min(a[1], c[1]), Math.max(a[2], c[2]), Math.max(a[3], c[3])];
        });
        state.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 30, duration: 0 });
      }
      return loadGridLists(units);
    });
  }

  function listGroup(testid, path, label) {
    var box = el("details", { "data-testid": testid });
    var sum = say(el("summary"), "group." + testid, [{ k: "group.loading" }]);
    box.appendChild(sum);
    var ul = el("ul", { "class": "list" });
    box.appendChild(ul);
    $("grid-lists").appendChild(box);
    return json(path).then(function (fc) {
      var n = fc.numberMatched !== undefined ? fc.numberMatched : fc.features.length;
      say(sum, "group." + testid, [n]);
      fc.features.forEach(function (f) {
        var li = el("li", { "data-testid": testid + "-item", "data-id": f.id });
        var b = el("button", { type: "button" });
        label(b, f.properties, f);
        b.addEventListener("click", function () {
          if (testid === "household") { showHit({ type: "household", collection: "household", id: f.id }, f); }
          else { flyTo(f.geometry); }
        });
        li.appendChild(b);
        ul.appendChild(li);
      });
    }).catch(function (e) {
      say(sum, "group." + testid, [e.status === 403 ? { k: "group.denied" } : { k: "group.failed", args: [e.message] }]);
    });
  }

  function text(node, s) { node.appendChild(document.createTextNode(s || "")); return node; }

  function loadGridLists(units) {
    $("grid-lists").textContent = "";
    var grids = units.filter(function (u) { return u.level === "grid"; });
    var jobs = [];
    grids.forEach(function (g) {
      var q = "?f=json&limit=200&grid_id=" + g.id;
      var bb = bboxOf(g.geometry).join(",");
      jobs.push(listGroup("compound", "/collections/compound/items" + q, function (b, p) {
        text(b, (p.name || "") + " " + (p.address || ""));
      }));
      jobs.push(listGroup("building", "/collections/building/items" + q, function (b, p) {
        text(b, p.address || p.name || p.code);
      }));
      jobs.push(listGroup("household", "/collections/household/items?f=json&limit=200&bbox=" + bb,
        function (b, p) {
          text(b, (p.room_no || "") + " · ");
          b.appendChild(say(el("span"), "occupancy." + (p.occupancy || "unknown")));
        }));
      jobs.push(listGroup("resident", "/collections/resident/items" + q, function (b, p) {
        text(b, (p.name || "—") + " · " + (p.room_no || ""));
      }));
    });
    return Promise.all(jobs);
  }

  function flyTo(geom) {
    if (!state.map || !geom) { return; }
    var b = bboxOf(geom);
    if (b[0] === b[2] && b[1] === b[3]) {
      state.map.flyTo({ center: [b[0], b[1]], zoom: Math.max(state.map.getZoom(), 18) });
    } else {
      state.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 40, maxZoom: 19 });
    }
    closeSheet();
  }

  // ------------------------------------------------------------------ search

  $("search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = $("search-input").value.trim();
    var ul = $("search-results");
    ul.textContent = "";
    ul.hidden = false;
    $("household-card").hidden = true;
    $("search-back").hidden = true;
    if (state.map) { state.map.getSource("hit").setData(EMPTY); }
    if (!q) { return; }
    $("search-input").blur();  // the phone's keyboard goes away: the results are seen
    request("/search?limit=20&q=" + encodeURIComponent(q)).then(function (r) {
      if (!r.ok) { drain(r); throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (rows) {  // /search answers a JSON list of hits
      if (!rows.length) { ul.appendChild(say(el("li", { "class": "note" }), "search.none")); }
      rows.forEach(function (hit) {
        var li = el("li", { "data-testid": "search-result", "data-collection": hit.collection,
                            "data-id": hit.id, "data-type": hit.type });
        var b = el("button", { type: "button" });
        b.appendChild(el("strong", {}, hit.label));
        text(b, " · ");
        b.appendChild(say(el("span"), "type." + hit.type));
        b.addEventListener("click", function () { showHit(hit, null); });
        li.appendChild(b);
        ul.appendChild(li);
      });
    }).catch(function (e) {
      ul.appendChild(say(el("li", { "class": "note" }), "search.failed", [e.message]));
    });
  });

  /* Mark a search hit (or a household of the grid list) on the map, keep it in
   * view above the sheet, and show its card. */
  function showHit(hit, feature) {
    openPanel("search");
    var results = $("search-results");
    $("search-back").hidden = !results.children.length || results.hidden;
    results.hidden = true;
    var card = $("household-card");
    card.hidden = false;
    card.textContent = "";
    card.setAttribute("data-id", hit.id);
    card.setAttribute("data-collection", hit.collection);
    card.appendChild(say(el("p", { "class": "hint" }), "card.loading"));
    var got = feature ? Promise.resolve(feature)
      : json("/collections/" + hit.collection + "/items/" + hit.id + "?f=json");
    return got.then(function (f) {
      var c = f.geometry ? bboxOf(f.geometry) : [hit.lon, hit.lat, hit.lon, hit.lat];
      var drawn = hit.collection === "household" ? householdCard(card, f) : featureCard(card, hit, f);
      // marked once the card is drawn: the sheet has its final height then
      return Promise.resolve(drawn).then(function () {
        mark((c[0] + c[2]) / 2, (c[1] + c[3]) / 2, hit);
        card.setAttribute("data-marked", "true");
      });
    }).catch(function (e) {
      if (hit.lon !== undefined) { mark(hit.lon, hit.lat, hit); }
      card.textContent = "";
      card.appendChild(el("h3", {}, hit.label || ""));
      card.appendChild(say(el("p", { "class": "error" }), "card.failed", [e.message]));
    });
  }

  function mark(lon, lat, hit) {
    var map = state.map;
    if (!map) { return; }
    map.getSource("hit").setData(point(lon, lat, { collection: hit.collection, id: hit.id }));
    // The sheet covers the lower part of the map: centre the hit in what is left.
    map.flyTo({ center: [lon, lat], zoom: Math.max(map.getZoom(), 18),
                offset: [0, -sheetCover() / 2], duration: 600 });
  }

  function householdCard(card, f) {
    var p = f.properties;
    var building = p.building_id ? json("/collections/building/items/" + p.building_id + "?f=json")
      .catch(function () { return null; }) : Promise.resolve(null);
    var unit = p.unit_id ? json("/collections/unit/items/" + p.unit_id + "?f=json")
      .catch(function () { return null; }) : Promise.resolve(null);
    // The residents as this worker may see them: the API masks or withholds.
    var residents = json("/collections/resident/items?f=json&limit=50&household_id=" + f.id)
      .catch(function (e) { return { denied: true, error: e }; });
    return Promise.all([building, unit, residents]).then(function (got) {
      var b = got[0] ? got[0].properties : {}, u = got[1] ? got[1].properties : {}, rs = got[2];
      card.textContent = "";
      card.appendChild(el("h3", { "data-testid": "household-title" },
        (b.address || b.name || "") + " " + (p.room_no || "")));
      var occ = say(el("span"), "occupancy." + (p.occupancy || "unknown"));
      var n = rs.denied ? null : (rs.numberMatched !== undefined ? rs.numberMatched : rs.features.length);
      card.appendChild(facts([
        ["card.address", b.address, "household-address"],
        ["card.building", b.name || b.code, "household-building"],
        ["card.unit", u.number ? say(el("span"), "card.unit.n", [u.number]) : null, "household-unit"],
        ["card.room", p.room_no, "household-room"],
        ["card.floor", p.floor !== null && p.floor !== undefined ? say(el("span"), "card.floor.n", [p.floor]) : null],
        ["card.area", p.area_m2 ? p.area_m2 + " m²" : null],
        ["card.occupancy", occ],
        ["card.residents", n === null ? say(el("span"), "card.residents.hidden")
          : say(el("span"), "card.residents.count", [n]), "household-residents-count"]
      ]));
      if (!rs.denied && rs.features.length) {
        var ul = el("ul", { "class": "people", "data-testid": "household-residents" });
        rs.features.forEach(function (r) {
          var q = r.properties;
          var li = el("li", { "data-testid": "household-resident", "data-id": r.id });
          li.appendChild(el("strong", {}, q.name || "—"));
          if (q.gender) { text(li, " · "); li.appendChild(say(el("span"), "gender." + q.gender)); }
          if (q.birth_year) { text(li, " · "); li.appendChild(say(el("span"), "born.year", [q.birth_year])); }
          if (q.phone) { text(li, " · " + q.phone); }
          (q.tags || []).forEach(function (tag) {
            li.appendChild(say(el("span", { "class": "tag" }), "tag." + tag));
          });
          ul.appendChild(li);
        });
        card.appendChild(ul);
      }
    });
  }

  function featureCard(card, hit, f) {
    var p = f.properties || {};
    card.textContent = "";
    card.appendChild(el("h3", {}, hit.label || p.name || p.address || ""));
    card.appendChild(facts([
      ["card.type", say(el("span"), "type." + hit.type)],
      ["card.name", p.name],
      ["card.address", p.address],
      ["card.floor", p.floors ? say(el("span"), "card.floors.n", [p.floors]) : null]
    ]));
  }

  // ---------------------------------------------------------------- position

  function gps() {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("no geolocation")); return; }
      navigator.geolocation.getCurrentPosition(function (p) {
        resolve({ lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy });
      }, function (e) { reject(new Error(e.message || "position unavailable")); },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 10000 });
    });
  }

  /* Fill `node` with the locate answer: grid · community · street office. */
  function showLocate(node, r, extraKey) {
    node.textContent = "";
    node.removeAttribute("data-i18n");
    var parts = [];
    ["grid", "community", "street_office"].forEach(function (level) {
      if (r[level]) { parts.push(say(el("span"), "locate." + level, [r[level].name])); }
    });
    if (!parts.length) { parts.push(say(el("span"), "locate.outside")); }
    if (extraKey) { parts.push(say(el("span"), extraKey)); }
    parts.forEach(function (s, i) {
      if (i) { text(node, " · "); }
      node.appendChild(s);
    });
  }

  $("locate-me").addEventListener("click", function () {
    var note = $("gps-note");
    note.hidden = false;
    say(note, "gps.locating");
    gps().then(function (p) {
      note.textContent = "";
      note.removeAttribute("data-i18n");
      note.appendChild(say(el("span"), "gps.accuracy", [Math.round(p.accuracy)]));
      text(note, " · ");
      note.appendChild(say(el("span"), "gps.note"));
      if (state.map) {
        state.map.getSource("me").setData(point(p.lon, p.lat));
        state.map.flyTo({ center: [p.lon, p.lat], zoom: Math.max(state.map.getZoom(), 17) });
      }
      // Where am I, in the stored CRS: the server converts (locate process).
      return locate(p.lon, p.lat, 4326).then(function (r) {
        showLocate(note, r, "gps.note");
      }).catch(function () {});
    }).catch(function (e) { say(note, "gps.none", [e.message]); });
  });

  function locate(lon, lat, crs) {
    return json("/processes/locate/execution", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: { x: lon, y: lat, crs: "EPSG:" + crs } })
    }).then(function (r) { return r.outputs || r; });
  }

  /* accuracy: metres for a GPS fix, null for a point tapped on the map. */
  function setPosition(lon, lat, crs, accuracy) {
    state.position = { lon: lon, lat: lat, crs: crs, grid: null, community: null };
    if (state.map) { state.map.getSource("pick").setData(point(lon, lat)); }
    if (crs === 4326) {
      say($("report-position"), "report.position.gps", [Math.round(accuracy), lon.toFixed(6), lat.toFixed(6)]);
    } else {
      say($("report-position"), "report.position.tap", [lon.toFixed(6), lat.toFixed(6)]);
    }
    var out = $("report-locate");
    if (!navigator.onLine) { say(out, "report.locate.offline"); return; }
    say(out, "report.locate.busy");
    var pos = state.position;
    locate(lon, lat, crs).then(function (r) {
      pos.grid = r.grid ? r.grid.name : null;
      pos.community = r.community ? r.community.name : null;
      showLocate(out, r);
    }).catch(function (e) { say(out, "report.locate.failed", [e.message]); });
  }

  $("use-gps").addEventListener("click", function () {
    say($("report-position"), "report.locating");
    gps().then(function (p) { setPosition(p.lon, p.lat, 4326, p.accuracy); })
      .catch(function (e) { say($("report-position"), "gps.none", [e.message]); });
  });
  $("use-tap").addEventListener("click", function () {
    state.picking = true;
    closeSheet();
    mapStatus("map.tap");
  });

  // ------------------------------------------------------------------ photo

  /* Downscale to at most 1600 px on the long side, as JPEG. */
  function downscale(file) {
    var draw = function (src, w, h) {
      var k = Math.min(1, MAX_SIDE / Math.max(w, h));
      var c = el("canvas");
      c.width = Math.max(1, Math.round(w * k)); c.height = Math.max(1, Math.round(h * k));
      c.getContext("2d").drawImage(src, 0, 0, c.width, c.height);
      return new Promise(function (resolve, reject) {
        c.toBlob(function (b) { return b ? resolve(b) : reject(new Error("cannot encode")); },
                 "image/jpeg", 0.85);
      });
    };
    if (window.createImageBitmap) {
      return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bmp) {
        return draw(bmp, bmp.width, bmp.height);
      });
    }
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () { draw(img, img.naturalWidth, img.naturalHeight).then(resolve, reject); };
      img.onerror = function () { reject(new Error("not an image")); };
      img.src = URL.createObjectURL(file);
    });
  }

  function clearPhoto() {
    var prev = $("photo-preview");
    if (prev.src) { URL.revokeObjectURL(prev.src); prev.removeAttribute("src"); }
    prev.hidden = true;
    say($("photo-label"), "report.photo.take");
  }

  var photoReady = Promise.resolve(null);
  document.querySelector("[data-testid=report-photo]").addEventListener("change", function (ev) {
    var file = ev.target.files && ev.target.files[0];
    clearPhoto();
    if (!file) { photoReady = Promise.resolve(null); return; }
    photoReady = downscale(file).then(function (blob) {
      var prev = $("photo-preview");
      prev.src = URL.createObjectURL(blob);
      prev.hidden = false;
      say($("photo-label"), "report.photo.retake");
      return blob;
    }).catch(function (e) {
      say($("report-message"), "report.photo.failed", [e.message]);
      return null;
    });
  });

  // ----------------------------------------------------------------- report

  $("report-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var msg = $("report-message");
    var pos = state.position;
    if (!pos) { say(msg, "report.nopos"); return; }
    photoReady.then(function (blob) {
      var rec = {
        client_uuid: uuid4(),  // fixed now: every resend is the same event
        category: f.category.value, description: f.description.value.trim(),
        lon: pos.lon, lat: pos.lat, crs: pos.crs, grid: pos.grid, community: pos.community,
        reporter_user_id: state.me ? state.me.user_id : null,
        created_at: new Date().toISOString(), photo: blob, state: "pending", event_id: null
      };
      // Kept on the phone before anything is sent: nothing is lost if the
      // connection drops at any point after this.
      return dbPut(rec).then(function () {
        f.reset();
        photoReady = Promise.resolve(null);
        clearPhoto();
        state.position = null;
        if (state.map) { state.map.getSource("pick").setData(EMPTY); }
        say($("report-position"), "report.noposition");
        $("report-locate").textContent = "";
        $("report-locate").removeAttribute("data-i18n");
        say(msg, navigator.onLine ? "report.sending" : "report.saved.offline");
        return showQueue();
      }).then(function () { return flush(); }).then(function () {
        var done = !!sent[rec.client_uuid];
        say(msg, done ? "report.done" : "report.saved.offline");
        return showConfirmation(rec);
      });
    }).catch(function (e) { say(msg, "report.savefailed", [e.message]); });
  });

  var confirmed = null;  // the report the confirmation card shows

  /* The card that replaces the form after a submit: sent (event number, the
   * grid and community the server assigned, photo uploaded), kept on the phone
   * (queued), or refused. */
  function showConfirmation(rec) {
    confirmed = rec;
    return dbAll().then(function (rows) {
      var queued = rows.filter(function (r) { return r.client_uuid === rec.client_uuid; })[0];
      var ack = sent[rec.client_uuid];
      var kind = ack ? "sent" : (queued && queued.state === "failed" ? "failed" : "queued");
      var card = $("report-done");
      card.textContent = "";
      card.setAttribute("data-state", kind);
      card.setAttribute("data-client-uuid", rec.client_uuid);
      card.setAttribute("data-event-id", ack ? ack.event_id : "");
      var h = el("h3");
      h.appendChild(el("span", { "class": "big", "aria-hidden": "true" },
        kind === "sent" ? "✓" : (kind === "queued" ? "…" : "!")));
      h.appendChild(say(el("span", { "data-testid": "report-done-title" }), "done." + kind));
      card.appendChild(h);
      var grid = el("span"), community = el("span");
      if (rec.grid) { grid.textContent = rec.grid; } else { say(grid, "done.by.server"); }
      if (rec.community) { community.textContent = rec.community; } else { say(community, "done.by.server"); }
      var photo = say(el("span"), !rec.photo ? "photo.none"
        : (ack && ack.photo_id ? "photo.uploaded" : "photo.queued"));
      card.appendChild(facts([
        ["done.number", ack ? "#" + ack.event_id : null, "report-done-number"],
        ["done.grid", grid, "report-done-grid"],
        ["done.community", community, "report-done-community"],
        ["done.photo", photo, "report-done-photo"]
      ]));
      if (kind === "queued") { card.appendChild(say(el("p", { "class": "hint" }), "done.queued.note")); }
      if (kind === "failed") { card.appendChild(el("p", { "class": "error" }, queued.error || "")); }
      var actions = el("div", { "class": "actions" });
      var again = say(el("button", { type: "button", "class": "primary", "data-testid": "report-another" }),
        "done.another");
      again.addEventListener("click", function () { openPanel("report"); });
      var mine = say(el("button", { type: "button", "data-testid": "report-view-events" }), "done.events");
      mine.addEventListener("click", function () { openPanel("events"); });
      actions.appendChild(again);
      actions.appendChild(mine);
      card.appendChild(actions);
      $("report-form").hidden = true;
      card.hidden = false;
      $("sheet").scrollTop = 0;
      if (ack) {
        // What the server stored: the grid and community it assigned by location.
        json("/collections/event/items/" + ack.event_id + "?f=json").then(function (f) {
          return Promise.all([nameOf("grid", f.properties.grid_id),
                              nameOf("community", f.properties.community_id)]);
        }).then(function (names) {
          if (confirmed !== rec) { return; }
          if (names[0]) { grid.removeAttribute("data-i18n"); grid.textContent = names[0]; }
          if (names[1]) { community.removeAttribute("data-i18n"); community.textContent = names[1]; }
          card.setAttribute("data-assigned", "true");
        }).catch(function () {});
      }
    });
  }

  /* A queued report shown as "kept on the phone" that has since been sent. */
  function refreshConfirmation() {
    var card = $("report-done");
    if (confirmed && !card.hidden && card.getAttribute("data-state") !== "sent" && sent[confirmed.client_uuid]) {
      say($("report-message"), "report.done");
      showConfirmation(confirmed);
    }
  }

  // -------------------------------------------------------------- my events

  function loadMyEvents() {
    var ul = $("my-events");
    return dbAll().then(function (queued) {
      var rows = queued.slice().reverse().map(function (r) {
        return { key: r.client_uuid, category: r.category, text: r.description,
                 status: r.state, when: r.created_at, error: r.error, seq: r.seq, local: true };
      });
      var uid = state.me && state.me.user_id;
      var path = "/collections/event/items?f=json&limit=50&sortby=-reported_at" +
                 (uid ? "&reporter_user_id=" + uid : "");
      return json(path).then(function (fc) {
        var seen = {};
        rows.forEach(function (r) { seen[r.key] = true; });
        fc.features.forEach(function (f) {
          var p = f.properties;
          if (seen[p.client_uuid]) { return; }
          rows.push({ key: p.client_uuid || String(f.id), id: f.id, category: p.category,
                      text: p.description, status: p.status, when: p.reported_at, feature: f });
        });
        return rows;
      }).catch(function () { return rows; });
    }).then(function (rows) {
      ul.textContent = "";
      if (!rows.length) { ul.appendChild(say(el("li", { "class": "note" }), "events.none")); }
      rows.forEach(function (r) {
        var li = el("li", { "data-testid": "my-event", "data-status": r.status,
                            "data-client-uuid": r.key, "data-event-id": r.id || "" });
        var b = el("button", { type: "button", "class": "row-button", "data-testid": "my-event-open" });
        b.appendChild(say(el("strong"), "cat." + r.category));
        b.appendChild(say(el("span", { "class": "status " + r.status }), "status." + r.status));
        var line = el("div", { "class": "hint" });
        text(line, (r.text || "") + " · ");
        if (r.when) { line.appendChild(timeEl(r.when)); }
        b.appendChild(line);
        b.addEventListener("click", function () { openEvent(r); });
        li.appendChild(b);
        if (r.error) {
          li.appendChild(el("div", { "class": "error" }, r.error));
          var del = say(el("button", { type: "button", "class": "discard" }), "events.discard");
          del.addEventListener("click", function () { dbDelete(r.seq).then(loadMyEvents).then(showQueue); });
          li.appendChild(del);
        }
        ul.appendChild(li);
      });
    });
  }

  var detailUrls = [];

  /* One event: its status, history and photos. A report still on the phone
   * shows what the phone holds. */
  function openEvent(r) {
    detailUrls.forEach(function (u) { URL.revokeObjectURL(u); });
    detailUrls = [];
    openPanel("event");
    var box = $("event-detail");
    box.textContent = "";
    box.setAttribute("data-event-id", r.id || "");
    box.setAttribute("data-client-uuid", r.key);
    box.appendChild(say(el("p", { "class": "hint" }), "card.loading"));
    var got = r.local
      ? dbAll().then(function (rows) {
          var rec = rows.filter(function (x) { return x.client_uuid === r.key; })[0];
          return { local: rec || {}, event: null, names: [rec && rec.grid, rec && rec.community] };
        })
      : json("/collections/event/items/" + r.id + "?f=json").then(function (f) {
          return Promise.all([nameOf("grid", f.properties.grid_id),
                              nameOf("community", f.properties.community_id),
                              json("/collections/event/items/" + r.id + "/history")
                                .then(function (h) { return h.history; },
                                      function () { return []; })])
            .then(function (got) {
              return { event: f, names: got.slice(0, 2), course: got[2] };
            });
        });
    return got.then(function (d) {
      var p = d.event ? d.event.properties : { category: r.category, status: r.status,
        description: r.text, reported_at: r.when };
      box.textContent = "";
      box.setAttribute("data-status", p.status);
      box.appendChild(say(el("h3"), "cat." + p.category));
      box.appendChild(facts([
        ["detail.number", d.event ? "#" + d.event.id : null, "event-detail-number"],
        ["detail.status", say(el("span", { "class": "status " + p.status }), "status." + p.status),
         "event-detail-status"],
        ["detail.reported", p.reported_at ? timeEl(p.reported_at) : null],
        ["done.grid", d.names[0]], ["done.community", d.names[1]],
        ["detail.description", p.description]
      ]));
      box.appendChild(say(el("h4"), "detail.history"));
      box.appendChild(history(p, !d.event, d.course || []));
      box.appendChild(say(el("h4"), "detail.photos"));
      var photos = el("div", { "class": "photos", "data-testid": "event-photos" });
      box.appendChild(photos);
      if (!d.event) {
        if (d.local.photo) { addPhoto(photos, d.local.photo, "local"); }
        else { photos.appendChild(say(el("p", { "class": "hint" }), "detail.nophoto")); }
        return;
      }
      return loadPhotos(photos, d.event.id);
    }).catch(function (e) {
      box.textContent = "";
      box.appendChild(say(el("p", { "class": "error" }), "events.failed", [e.message]));
    });
  }

  /* The event's course: every status change the server recorded
   * (GET …/history), with "received" when the server got a report later than it
   * was made (an offline report). Events older than the record fall back to
   * what the event's own fields tell. */
  function history(p, local, course) {
    var ol = el("ol", { "class": "history", "data-testid": "event-history" });
    function item(status, key, args, when) {
      var li = el("li", { "data-testid": "event-history-item", "data-status": status });
      li.appendChild(say(el("strong"), key, args));
      if (when) { li.appendChild(timeEl(when)); }
      ol.appendChild(li);
    }
    if (local) {
      item(p.status, "hist.pending", null, p.reported_at);
      return ol;
    }
    item("reported", "hist.reported", null, p.reported_at);
    if (p.created_at && Math.abs(new Date(p.created_at) - new Date(p.reported_at)) > 60000) {
      item("received", "hist.received", null, p.created_at);
    }
    var changes = course.filter(function (c) { return c.from_status; });
    if (changes.length) {
      changes.forEach(function (c) {
        if (c.to_status === "evaluated") {
          item("evaluated", "hist.evaluated", [p.evaluation_score || "—"], c.at);
        } else {
          item(c.to_status, "hist.changed", [{ k: "status." + c.to_status }], c.at);
        }
      });
      return ol;
    }
    if (p.status && p.status !== "reported" && p.status !== "evaluated") {
      item(p.status, "hist.current", [{ k: "status." + p.status }], p.updated_at);
    }
    if (p.evaluated_at || p.status === "evaluated") {
      item("evaluated", "hist.evaluated", [p.evaluation_score || "—"], p.evaluated_at || p.updated_at);
    }
    return ol;
  }

  function loadPhotos(box, eventId) {
    return json("/collections/event/items/" + eventId + "/photos").then(function (list) {
      if (!list.photos.length) { box.appendChild(say(el("p", { "class": "hint" }), "detail.nophoto")); return; }
      // An <img> cannot send the bearer token: fetch the bytes, show a blob URL.
      return Promise.all(list.photos.map(function (ph) {
        return request(localPath(ph.href)).then(function (resp) {
          if (!resp.ok) { drain(resp); throw new Error("HTTP " + resp.status); }
          return resp.blob();
        }).then(function (blob) { addPhoto(box, blob, ph.id); })
          .catch(function (e) { box.appendChild(say(el("p", { "class": "error" }), "card.failed", [e.message])); });
      }));
    });
  }

  function addPhoto(box, blob, id) {
    var url = URL.createObjectURL(blob);
    detailUrls.push(url);
    box.appendChild(el("img", { src: url, alt: "", "data-testid": "event-photo", "data-photo-id": id }));
  }

  // ------------------------------------------------------------------ panels

  function openPanel(name) {
    var sheet = $("sheet");
    sheet.hidden = false;
    sheet.classList.toggle("tall", name === "report" || name === "event");
    ["grid", "search", "report", "events", "event"].forEach(function (p) {
      $("panel-" + p).hidden = p !== name;
    });
    var tab = name === "event" ? "events" : name;
    document.querySelectorAll(".tabs button").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-panel") === tab);
    });
    if (name === "report" && !$("report-done").hidden) {
      $("report-done").hidden = true;
      $("report-form").hidden = false;
      var m = $("report-message");
      m.removeAttribute("data-i18n");
      m.textContent = "";
      confirmed = null;
    }
    sheet.scrollTop = 0;
    if (name === "events") { loadMyEvents(); }
  }
  function closeSheet() {
    $("sheet").hidden = true;
    document.querySelectorAll(".tabs button").forEach(function (b) { b.classList.remove("active"); });
  }
  document.querySelectorAll(".tabs button").forEach(function (b) {
    b.addEventListener("click", function () { openPanel(b.getAttribute("data-panel")); });
  });
  $("sheet-close").addEventListener("click", closeSheet);
  $("event-back").addEventListener("click", function () { openPanel("events"); });
  $("search-back").addEventListener("click", function () {
    $("search-back").hidden = true;
    $("household-card").hidden = true;
    $("search-results").hidden = false;
  });

  var select = document.querySelector("[data-testid=report-category]");
  CATEGORIES.forEach(function (c) { select.appendChild(say(el("option", { value: c }), "cat." + c)); });

  // ------------------------------------------------------------------- start

  function start() {
    return json("/auth/me").then(function (me) {
      state.me = me;
      $("login-view").hidden = true;
      $("map-view").hidden = false;
      $("logout").hidden = false;
      flush();
      // Paint the shell first, then fetch MapLibre.
      return new Promise(function (r) { requestAnimationFrame(function () { setTimeout(r, 0); }); })
        .then(startMap).then(loadMyGrid).then(function () { mapReadyResolve(true); })
        .catch(function (e) { console.warn("onemap:", e); });
    }, function (e) {
      if (e.status === 401 || !state.token) { signOut(e.status === 401 ? "login.again" : ""); return; }
      // Offline with a saved session: show the map view from cache, send later.
      $("login-view").hidden = true;
      $("map-view").hidden = false;
      $("logout").hidden = false;
      return startMap().catch(function () {});
    });
  }

  window.addEventListener("online", function () { setNet(); flush(); });
  window.addEventListener("offline", setNet);
  // Belt and braces: a queued report is retried every 20 s while one waits.
  setInterval(function () {
    if (state.token && navigator.onLine) {
      dbAll().then(function (r) {
        if (r.some(function (x) { return x.state !== "failed"; })) { flush(); }
      });
    }
  }, 20000);

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(function (e) {
      console.info("onemap: no service worker", e && e.message);
    });
  }

  applyLang();
  setNet();
  api.ready = showQueue().then(function () {
    if (!state.token) { showLogin(); return; }
    return start();
  }).then(function () { return true; });
})();
