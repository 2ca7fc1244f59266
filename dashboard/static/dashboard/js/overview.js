/* Fleet overview: filters the host table by name as you type (kept across refreshes). */
(function () {
  "use strict";

  var input = document.getElementById("host-filter");
  if (!input) return;

  function apply() {
    var query = input.value.trim().toLowerCase();
    document.querySelectorAll("#host-table tbody tr[data-name]").forEach(function (row) {
      row.hidden = query !== "" && row.dataset.name.toLowerCase().indexOf(query) === -1;
    });
  }

  input.addEventListener("input", apply);
  document.addEventListener("dashboard:refreshed", apply);
  apply();
})();
