/* The grid worker's mobile map (/m/). No framework, no build step.
 *
 * - Sign in (POST /auth/login); the token is kept in localStorage and sent as
 *   "Authorization: Bearer" with every API request and tile (transformRequest).
 * - "My grid": the units of the worker's data scope (GET /auth/me), their
 *   compounds, buildings, households and residents — whatever the API returns:
 *   scope and masking are the server's (PostgreSQL row-level security).
 * - Report an event (随手拍): every report is first written to IndexedDB with a
 *   client_uuid fixed at creation, then sent in order: POST the event (a resend
 *   with the same client_uuid answers 200 with the stored event), then the photo
 *   (the same bytes on the same event answer 200 with the stored photo). A report
 *   leaves the queue only when both are acknowledged, so a dropped connection at
 *   any step means a resend, never a loss or a duplicate.
 * - window.onemapMobile exposes {ready, queueLength(), lastSubmitted, flush(), map,
 *   whenMapReady()} for the browser tests.
 */
(function () {
  "use strict";

  var BASE = location.origin;
  var TOKEN_KEY = "onemap.mobile.token";
  var DB_NAME = "onemap-mobile";
  var STORE = "reports";
  var MAX_SIDE = 1600;
  var CRS_URI = { 4326: "http://www.opengis.net/def/crs/EPSG/0/4326",
                  4490: "http://www.opengis.net/def/crs/EPSG/0/4490" };
  // onemap.event.category (020_events.sql), in the order a worker meets them.
  var CATEGORIES = [
    ["sanitation", "环境卫生", "Sanitation"],
    ["city_appearance", "市容环境", "City appearance"],
    ["municipal_facility", "市政设施", "Municipal facility"],
    ["road_traffic", "道路交通", "Road & traffic"],
    ["street_order", "街面秩序", "Street order"],
    ["construction", "施工管理", "Construction"],
    ["advertising", "广告招牌", "Advertising"],
    ["greening", "园林绿化", "Greening"],
    ["safety_hazard", "安全隐患", "Safety hazard"],
    ["dispute", "矛盾纠纷", "Dispute"],
    ["livelihood", "民生服务", "Livelihood"],
    ["emergency", "突发事件", "Emergency"],
    ["other", "其他", "Other"]
  ];
  var STATUS = { reported: "已上报 reported", assigned: "已派遣 assigned",
                 handled: "已处置 handled", closed: "已结案 closed",
                 evaluated: "已评价 evaluated", pending: "待发送 waiting to send",
                 failed: "发送失败 failed" };

  var $ = function (id) { return document.getElementById(id); };
  var state = { token: localStorage.getItem(TOKEN_KEY), me: null, map: null,
                position: null, picking: false, units: [] };
  var api = {
    lastSubmitted: null,
    map: null,
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

  function authHeaders(extra) {
    var h = extra || {};
    if (state.token) { h.Authorization = "Bearer " + state.token; }
    return h;
  }

  function request(path, options) {
    options = options || {};
    options.headers = authHeaders(options.headers);
    return fetch(BASE + path, options).then(function (r) {
      if (r.status === 401 && state.token && path.indexOf("/auth/login") !== 0) {
        signOut("登录已过期，请重新登录 / session expired, sign in again");
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

  function setNet() {
    var on = navigator.onLine;
    var n = $("net");
    n.textContent = on ? "在线 online" : "离线 offline";
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
      q.textContent = "待发 " + rows.length + " queued";
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
        rec.event_id = Number(loc.split("/").pop());
        return dbPut(rec).then(function () { return rec; });
      }
      return refuse(rec, resp);
    });
  }

  function refuse(rec, resp) {
    if (resp.status === 401 || resp.status >= 500 || resp.status === 429) {
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
    api.lastSubmitted = { client_uuid: rec.client_uuid, event_id: rec.event_id,
                          photo_id: photoId, category: rec.category,
                          grid: rec.grid || null, community: rec.community || null };
    return dbDelete(rec.seq).then(function () { return true; });
  }

  // ------------------------------------------------------------------- login

  function showLogin(message) {
    $("map-view").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
  }

  function signOut(message) {
    var token = state.token;
    state.token = null;
    state.me = null;
    localStorage.removeItem(TOKEN_KEY);
    if (token && message === undefined) {
      fetch(BASE + "/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + token } })
        .catch(function () {});
    }
    // Cached tiles hold this worker's scoped data: another user must not see them.
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({ type: "signed-out" });
    }
    showLogin(message);
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    $("login-error").textContent = "";
    fetch(BASE + "/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: f.username.value.trim(), password: f.password.value })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (!r.ok) { throw new Error(b.description || "用户名或密码错误 / invalid credentials"); }
        state.token = b.access_token;
        localStorage.setItem(TOKEN_KEY, state.token);
        f.password.value = "";
        return start();
      });
    }).catch(function (e) {
      $("login-error").textContent = navigator.onLine ? e.message
        : "离线，无法登录 / offline: cannot sign in";
    });
  });
  $("logout").addEventListener("click", function () { signOut(); });

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
      if (!r.ok) { throw new Error("no style (HTTP " + r.status + ")"); }
      return r.json();
    });
  }

  function startMap() {
    if (state.map) { return Promise.resolve(state.map); }
    $("map-status").textContent = "地图加载中… Loading map…";
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
            $("map-status").textContent = "";
            resolve(map);
          });
          map.on("error", function (e) { console.warn("onemap map:", e && e.error && e.error.message); });
          map.on("click", function (e) {
            if (state.picking) {
              state.picking = false;
              $("map-status").textContent = "";
              setPosition(e.lngLat.lng, e.lngLat.lat, 4490, "地图点选 tapped on the map");
              openPanel("report");
            }
          });
        });
      }).catch(function (e) {
        $("map-status").textContent = "地图无法加载 / map unavailable: " + e.message;
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
  }

  function point(lon, lat) {
    return { type: "FeatureCollection",
             features: [{ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [lon, lat] } }] };
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

  // ----------------------------------------------------------------- my grid

  var SCOPE_COLLECTIONS = { grid: "grid", community: "community",
                            street_office: "street_office", district: "district" };

  function loadMyGrid() {
    var scope = (state.me && state.me.data_scope) || [];
    var summary = $("grid-summary");
    summary.textContent = "";
    if (!scope.length) {
      summary.appendChild(el("p", { "class": "hint" }, "没有数据范围 / no data scope assigned"));
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
        summary.appendChild(el("p", { "data-testid": "grid-name" },
          (f.properties.name || f.properties.code || f.id) + " · " + f.level));
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

  function listGroup(title, testid, path, label) {
    var box = el("details", { "data-testid": testid });
    var sum = el("summary", {}, title + " …");
    box.appendChild(sum);
    var ul = el("ul", { "class": "list" });
    box.appendChild(ul);
    $("grid-lists").appendChild(box);
    return json(path).then(function (fc) {
      var n = fc.numberMatched !== undefined ? fc.numberMatched : fc.features.length;
      sum.textContent = title + " (" + n + ")";
      fc.features.forEach(function (f) {
        var li = el("li", { "data-testid": testid + "-item", "data-id": f.id });
        var b = el("button", { type: "button" }, label(f.properties, f));
        b.addEventListener("click", function () { flyTo(f.geometry); });
        li.appendChild(b);
        ul.appendChild(li);
      });
    }).catch(function (e) {
      sum.textContent = title + " — " + (e.status === 403 ? "无权查看 not permitted" : e.message);
    });
  }

  function loadGridLists(units) {
    $("grid-lists").textContent = "";
    var grids = units.filter(function (u) { return u.level === "grid"; });
    var jobs = [];
    grids.forEach(function (g) {
      var q = "?f=json&limit=200&grid_id=" + g.id;
      var bb = bboxOf(g.geometry).join(",");
      jobs.push(listGroup("小区 Compounds", "compound", "/collections/compound/items" + q,
        function (p) { return (p.name || "") + " " + (p.address || ""); }));
      jobs.push(listGroup("楼栋 Buildings", "building", "/collections/building/items" + q,
        function (p) { return p.address || p.name || p.code; }));
      jobs.push(listGroup("户 Households", "household",
        "/collections/household/items?f=json&limit=200&bbox=" + bb,
        function (p) { return (p.room_no || "") + " · " + (p.occupancy || ""); }));
      jobs.push(listGroup("居民 Residents", "resident", "/collections/resident/items" + q,
        function (p) { return (p.name || "—") + " · " + (p.room_no || ""); }));
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
    if (!q) { return; }
    request("/search?limit=20&q=" + encodeURIComponent(q)).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (rows) {  // /search answers a JSON list of hits
      if (!rows.length) { ul.appendChild(el("li", {}, "没有结果 / nothing found")); }
      rows.forEach(function (hit) {
        var li = el("li", { "data-testid": "search-result", "data-collection": hit.collection,
                            "data-id": hit.id });
        var b = el("button", { type: "button" }, hit.label + " · " + hit.type);
        b.addEventListener("click", function () {
          if (hit.bbox) {
            flyTo({ type: "Polygon", coordinates: [[[hit.bbox[0], hit.bbox[1]], [hit.bbox[2], hit.bbox[3]]]] });
          } else { flyTo({ type: "Point", coordinates: [hit.lon, hit.lat] }); }
        });
        li.appendChild(b);
        ul.appendChild(li);
      });
    }).catch(function (e) { ul.appendChild(el("li", {}, "搜索失败 / search failed: " + e.message)); });
  });

  // ---------------------------------------------------------------- position

  var GPS_NOTE = "GPS 为 WGS84 坐标，以 EPSG:4326 发送，由服务器换算为 CGCS2000 (EPSG:4490)" +
                 " / GPS gives WGS84: sent as EPSG:4326, the server converts it to CGCS2000";

  function gps() {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("no geolocation")); return; }
      navigator.geolocation.getCurrentPosition(function (p) {
        resolve({ lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy });
      }, function (e) { reject(new Error(e.message || "position unavailable")); },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 10000 });
    });
  }

  $("locate-me").addEventListener("click", function () {
    var note = $("gps-note");
    note.hidden = false;
    note.textContent = "定位中… locating… " + GPS_NOTE;
    gps().then(function (p) {
      note.textContent = "±" + Math.round(p.accuracy) + " m · " + GPS_NOTE;
      if (state.map) {
        state.map.getSource("me").setData(point(p.lon, p.lat));
        state.map.flyTo({ center: [p.lon, p.lat], zoom: Math.max(state.map.getZoom(), 17) });
      }
      // Where am I, in the stored CRS: the server converts (locate process).
      return locate(p.lon, p.lat, 4326).then(function (r) {
        note.textContent = describeLocate(r) + " · " + GPS_NOTE;
      }).catch(function () {});
    }).catch(function (e) { note.textContent = "无法定位 / no position: " + e.message; });
  });

  function locate(lon, lat, crs) {
    return json("/processes/locate/execution", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: { x: lon, y: lat, crs: "EPSG:" + crs } })
    }).then(function (r) { return r.outputs || r; });
  }

  function describeLocate(r) {
    var parts = [];
    if (r.grid) { parts.push("网格 " + r.grid.name); }
    if (r.community) { parts.push("社区 " + r.community.name); }
    if (r.street_office) { parts.push("街道 " + r.street_office.name); }
    return parts.length ? parts.join(" · ") : "不在任何网格 / outside every grid";
  }

  function setPosition(lon, lat, crs, how) {
    state.position = { lon: lon, lat: lat, crs: crs, grid: null, community: null };
    if (state.map) { state.map.getSource("pick").setData(point(lon, lat)); }
    $("report-position").textContent = how + ": " + lon.toFixed(6) + ", " + lat.toFixed(6) +
      " (EPSG:" + crs + (crs === 4326 ? ", 服务器换算 converted by the server" : "") + ")";
    var out = $("report-locate");
    if (!navigator.onLine) {
      out.textContent = "离线：网格由服务器按位置分配 / offline: the server assigns the grid";
      return;
    }
    out.textContent = "定位网格… locating grid…";
    var pos = state.position;
    locate(lon, lat, crs).then(function (r) {
      pos.grid = r.grid ? r.grid.name : null;
      pos.community = r.community ? r.community.name : null;
      out.textContent = describeLocate(r);
    }).catch(function (e) {
      out.textContent = "网格由服务器按位置分配 / the server assigns the grid (" + e.message + ")";
    });
  }

  $("use-gps").addEventListener("click", function () {
    $("report-position").textContent = "定位中… locating…";
    gps().then(function (p) { setPosition(p.lon, p.lat, 4326, "GPS ±" + Math.round(p.accuracy) + " m"); })
      .catch(function (e) { $("report-position").textContent = "无法定位 / no position: " + e.message; });
  });
  $("use-tap").addEventListener("click", function () {
    state.picking = true;
    closeSheet();
    $("map-status").textContent = "请在地图上点选事件位置 / tap the event's place on the map";
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

  var photoReady = Promise.resolve(null);
  document.querySelector("[data-testid=report-photo]").addEventListener("change", function (ev) {
    var file = ev.target.files && ev.target.files[0];
    var prev = $("photo-preview");
    prev.hidden = true;
    if (!file) { photoReady = Promise.resolve(null); return; }
    photoReady = downscale(file).then(function (blob) {
      prev.src = URL.createObjectURL(blob);
      prev.hidden = false;
      return blob;
    }).catch(function (e) {
      $("report-message").textContent = "照片无法读取 / cannot read the photo: " + e.message;
      return null;
    });
  });

  // ----------------------------------------------------------------- report

  $("report-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var msg = $("report-message");
    var pos = state.position;
    if (!pos) { msg.textContent = "请先选择位置 / choose the position first"; return; }
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
        $("photo-preview").hidden = true;
        state.position = null;
        if (state.map) { state.map.getSource("pick").setData(EMPTY); }
        $("report-position").textContent = "未选位置 No position yet";
        $("report-locate").textContent = "";
        msg.textContent = navigator.onLine ? "发送中… sending…"
          : "已保存，联网后自动发送 / saved: sent when back online";
        return showQueue();
      }).then(function () { return flush(); }).then(function (done) {
        msg.textContent = done ? "已上报 / reported"
          : "已保存，联网后自动发送 / saved: sent when back online";
      });
    }).catch(function (e) { msg.textContent = "保存失败 / could not save: " + e.message; });
  });

  // -------------------------------------------------------------- my events

  function loadMyEvents() {
    var ul = $("my-events");
    return dbAll().then(function (queued) {
      var rows = queued.slice().reverse().map(function (r) {
        return { key: r.client_uuid, label: label(r.category), text: r.description,
                 status: r.state, when: r.created_at, error: r.error, seq: r.seq };
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
          rows.push({ key: p.client_uuid || String(f.id), id: f.id, label: label(p.category),
                      text: p.description, status: p.status, when: p.reported_at });
        });
        return rows;
      }).catch(function () { return rows; });
    }).then(function (rows) {
      ul.textContent = "";
      if (!rows.length) { ul.appendChild(el("li", {}, "还没有事件 / no events yet")); }
      rows.forEach(function (r) {
        var li = el("li", { "data-testid": "my-event", "data-status": r.status,
                            "data-client-uuid": r.key, "data-event-id": r.id || "" });
        li.appendChild(el("strong", {}, r.label));
        li.appendChild(el("span", { "class": "status " + r.status }, STATUS[r.status] || r.status));
        li.appendChild(el("div", { "class": "hint" },
          (r.text || "") + " · " + (r.when ? new Date(r.when).toLocaleString("zh-CN") : "")));
        if (r.error) {
          li.appendChild(el("div", { "class": "error" }, r.error));
          var del = el("button", { type: "button" }, "删除 Discard");
          del.addEventListener("click", function () { dbDelete(r.seq).then(loadMyEvents).then(showQueue); });
          li.appendChild(del);
        }
        ul.appendChild(li);
      });
    });
  }

  function label(code) {
    for (var i = 0; i < CATEGORIES.length; i++) {
      if (CATEGORIES[i][0] === code) { return CATEGORIES[i][1] + " " + CATEGORIES[i][2]; }
    }
    return code;
  }

  // ------------------------------------------------------------------ panels

  function openPanel(name) {
    $("sheet").hidden = false;
    ["grid", "search", "report", "events"].forEach(function (p) {
      $("panel-" + p).hidden = p !== name;
    });
    document.querySelectorAll(".tabs button").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-panel") === name);
    });
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

  var select = document.querySelector("[data-testid=report-category]");
  CATEGORIES.forEach(function (c) { select.appendChild(el("option", { value: c[0] }, c[1] + " " + c[2])); });

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
      if (e.status === 401 || !state.token) { signOut(e.status === 401 ? "请重新登录 / sign in again" : ""); return; }
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

  setNet();
  api.ready = showQueue().then(function () {
    if (!state.token) { showLogin(); return; }
    return start();
  }).then(function () { return true; });
})();
