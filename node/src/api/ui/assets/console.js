// The threatmesh console's one script. Pages work without it; it only shows the
// recipients box of the publish form when the chosen marking needs recipients.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const tlp = document.getElementById("tlp");
  const recipients = document.getElementById("recipients");
  if (!tlp || !recipients) {
    return;
  }
  const needs = (recipients.dataset.forTlp || "").split(" ");
  const update = () => {
    recipients.hidden = !needs.includes(tlp.value);
  };
  tlp.addEventListener("change", update);
  update();
});
