/* Day view: sorts the host table by the clicked column header (again: the other way), with
 * aria-sort on the headers; the order survives the page's refreshes. Cells sort by their
 * data-value when they have one, else by their text. */
(function () {
  "use strict";

  var sorted = null; // {index, direction}

  function table() {
    return document.getElementById("day-table");
  }

  function key(row, index, numeric) {
    var cell = row.cells[index];
    var value = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
    if (!numeric) return value;
    var number = parseFloat(value);
    return isNaN(number) ? -Infinity : number;
  }

  function sortBy(index, direction) {
    var current = table();
    var header = current.tHead.rows[0].cells[index];
    var numeric = header.dataset.sort === "number";
    var body = current.tBodies[0];
    var rows = Array.prototype.filter.call(body.rows, function (row) {
      return row.cells.length > index;
    });
    var sign = direction === "ascending" ? 1 : -1;
    var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
    rows.sort(function (a, b) {
      var x = key(a, index, numeric);
      var y = key(b, index, numeric);
      return sign * (numeric ? (x > y) - (x < y) : collator.compare(x, y));
    });
    body.append.apply(body, rows);
    Array.prototype.forEach.call(current.tHead.rows[0].cells, function (th, i) {
      if (th.dataset.sort) th.setAttribute("aria-sort", i === index ? direction : "none");
    });
    sorted = { index: index, direction: direction };
  }

  function wire() {
    var current = table();
    if (!current) return;
    Array.prototype.forEach.call(current.tHead.rows[0].cells, function (th, index) {
      if (!th.dataset.sort) return;
      th.addEventListener("click", function () {
        var next = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        sortBy(index, next);
      });
    });
    if (sorted) sortBy(sorted.index, sorted.direction);
  }

  // A refresh replaces the table: listen on the new headers and keep the reader's order.
  document.addEventListener("dashboard:refreshed", wire);
  wire();
})();
