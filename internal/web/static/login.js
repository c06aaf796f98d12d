// The login page: keep the page key for this origin, then open the console.
"use strict";
(function () {
  var m = document.querySelector('meta[name="kith-key"]');
  if (m && m.content) {
    localStorage.setItem("kith-key", m.content);
  }
  location.replace("/");
})();
