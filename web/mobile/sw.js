/* Service worker of the grid worker's map (/m/).
 *
 * - App shell (this directory and MapLibre): stale-while-revalidate, so the app
 *   opens with no connection and picks up a new version on the next start.
 * - Tiles, TileJSON and styles: stale-while-revalidate in their own cache,
 *   emptied when the worker signs out (tiles hold scoped data).
 * - Everything else (API reads and writes, sign-in) goes to the network: the
 *   page keeps unsent reports in IndexedDB itself.
 */
"use strict";

var SHELL = "onemap-m-shell-v5";  // v2: the app icons; v3: app.js without fallbacks; v4: issue 13; v5: the event history
var TILES = "onemap-m-tiles-v1";
var SHELL_FILES = [
  "./", "./index.html", "./app.js", "./style.css", "./manifest.webmanifest",
  "./icons/icon.svg", "./icons/icon-180.png", "./icons/icon-192.png", "./icons/icon-512.png",
  "/static/maplibre-gl/maplibre-gl.js", "/static/maplibre-gl/maplibre-gl.css"
];
var TILE_PATH = /^\/(tiles\/|collections\/[^/]+\/tiles\/|styles\/|fonts\/)/;

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(SHELL).then(function (c) {
    // One missing file must not stop the rest from being cached.
    return Promise.all(SHELL_FILES.map(function (f) {
      return c.add(f).catch(function () {});
    }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) {
      return n.indexOf("onemap-m-") === 0 && n !== SHELL && n !== TILES;
    }).map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("message", function (event) {
  if (event.data && event.data.type === "signed-out") {
    event.waitUntil(caches.delete(TILES));
  }
});

/* The cached copy if there is one (refreshed in the background), else the network.
 * matchOptions go to cache.match (the shell: {ignoreSearch: true}). */
function staleWhileRevalidate(cacheName, request, matchOptions) {
  return caches.open(cacheName).then(function (cache) {
    return cache.match(request, matchOptions).then(function (cached) {
      var fresh = fetch(request).then(function (response) {
        if (response.ok) { cache.put(request, response.clone()); }
        return response;
      });
      if (cached) {
        fresh.catch(function () {});  // offline: the cached copy is the answer
        return cached;
      }
      return fresh;
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  var scope = new URL(self.registration.scope).pathname;
  if (TILE_PATH.test(url.pathname)) {
    event.respondWith(staleWhileRevalidate(TILES, request));
  } else if (url.pathname.indexOf(scope) === 0 || url.pathname.indexOf("/static/maplibre-gl/") === 0) {
    // Query strings do not change the shell (?base=… for tests): match on the path.
    event.respondWith(staleWhileRevalidate(SHELL, request, { ignoreSearch: true }));
  }
});
