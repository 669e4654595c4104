// Sample viewer controls: open/close every problem, show only problems the models disagree on.
// The controls are hidden until this script has run (data-js), so a page without scripts has no dead buttons.
document.querySelectorAll("[data-toggle-all]").forEach(function (button) {
  button.addEventListener("click", function () {
    var root = document.getElementById(button.getAttribute("data-toggle-all"));
    var open = button.getAttribute("data-open") !== "1";
    root.querySelectorAll("details.problem").forEach(function (d) { d.open = open; });
    button.setAttribute("data-open", open ? "1" : "0");
    button.textContent = open ? "Collapse all" : "Expand all";
  });
});
document.querySelectorAll("[data-filter-disagree]").forEach(function (box) {
  box.addEventListener("change", function () {
    var root = document.getElementById(box.getAttribute("data-filter-disagree"));
    root.querySelectorAll("[data-agree]").forEach(function (el) {
      el.classList.toggle("hidden", box.checked);
    });
  });
});
document.documentElement.setAttribute("data-js", "ready");
