// The desks: typing (or a QR reader that types) always works; where the browser reads QR codes
// itself (BarcodeDetector), a camera button fills in the field it names and submits the form.
(function () {
  var button = document.getElementById("desk-scan");
  var video = document.getElementById("desk-camera");
  if (!button || !("BarcodeDetector" in window) || !navigator.mediaDevices) return;
  var field = document.getElementById(button.dataset.scanFor || "code");
  button.hidden = false;
  button.addEventListener("click", function () {
    var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      video.srcObject = stream;
      video.hidden = false;
      video.play();
      var look = function () {
        detector.detect(video).then(function (codes) {
          if (!codes.length) return window.requestAnimationFrame(look);
          stream.getTracks().forEach(function (track) { track.stop(); });
          field.value = codes[0].rawValue;
          field.form.submit();
        }, function () { window.requestAnimationFrame(look); });
      };
      look();
    }, function () { button.hidden = true; });
  });
})();
