/* Attackers: "Flagged only" hides the addresses that never logged in (kept across refreshes). */
(function () {
  "use strict";

  var toggle = document.getElementById("flagged-only");
  if (!toggle) return;

  function apply() {
    document.querySelectorAll('#attacker-table tbody tr[data-flagged="false"]').forEach(function (row) {
      row.hidden = toggle.checked;
    });
  }

  toggle.addEventListener("change", apply);
  document.addEventListener("dashboard:refreshed", apply);
  apply();
})();
