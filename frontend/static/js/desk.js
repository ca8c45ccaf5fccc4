// The desks: typing (or a QR reader that types) always works. With a camera, the button reads a QR
// code (the browser's BarcodeDetector where it has one, else jsQR from npm, e.g. on an iPad), fills
// in the field the button names and submits the form.
(function () {
  var button = document.getElementById("desk-scan");
  var video = document.getElementById("desk-camera");
  var canRead = "BarcodeDetector" in window || typeof window.jsQR === "function";
  if (!button || !video || !canRead || !navigator.mediaDevices) return;
  var field = document.getElementById(button.dataset.scanFor || "code");
  var canvas = document.createElement("canvas");

  function withJsQR() {
    if (!video.videoWidth) return Promise.resolve(null);
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    var context = canvas.getContext("2d");
    context.drawImage(video, 0, 0);
    var found = window.jsQR(context.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height);
    return Promise.resolve(found ? found.data : null);
  }

  function reader() {
    if (!("BarcodeDetector" in window)) return withJsQR;
    var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    return function () {
      return detector.detect(video).then(function (codes) { return codes.length ? codes[0].rawValue : null; });
    };
  }

  button.hidden = false;
  button.addEventListener("click", function () {
    var read = reader();
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      video.srcObject = stream;
      video.hidden = false;
      video.play();
      var look = function () {
        read().then(function (text) {
          if (!text) return window.requestAnimationFrame(look);
          stream.getTracks().forEach(function (track) { track.stop(); });
          field.value = text;
          field.form.submit();
        }, function () { window.requestAnimationFrame(look); });
      };
      look();
    }, function () { button.hidden = true; });
  });
})();
