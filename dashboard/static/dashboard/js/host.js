/* Host detail: choosing a day shows its tables at once (a pause first, so that typing a date
 * digit by digit does not load the page for year 2, 20 and 202). */
(function () {
  "use strict";

  var input = document.querySelector("input[data-autosubmit]");
  if (!input || !input.form) return;
  var pending = null;

  input.addEventListener("change", function () {
    window.clearTimeout(pending);
    pending = window.setTimeout(function () {
      if (input.checkValidity() && input.form.checkValidity()) input.form.requestSubmit();
    }, 800);
  });
  input.addEventListener("input", function () {
    window.clearTimeout(pending);
  });
})();
