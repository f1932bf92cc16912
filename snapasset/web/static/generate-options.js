// The page's generation options that are not a plain text value: the number of variants and a
// reference picture (in the options row of the form). app.js asks collect() for them when it
// submits; the plain ones (format, fit, model) are data-option controls.
(function () {
  "use strict";

  var variantsInput = document.getElementById("variants");
  var referenceInput = document.getElementById("reference");
  var REFERENCE_MAX = 10 * 1000 * 1000;   // the API takes data URLs of up to 10 MB

  function readAsDataUrl(file) {
    return new Promise(function (resolve, reject) {
      if (file.size > REFERENCE_MAX) return reject(new Error("The reference picture is larger than 10 MB."));
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(new Error("Could not read the reference picture.")); };
      reader.readAsDataURL(file);
    });
  }

  // A promise of the options to add to the request (only what differs from the API's defaults).
  function collect() {
    var options = {};
    var variants = parseInt(variantsInput && variantsInput.value, 10);
    if (variants > 1) options.n = variants;
    var file = referenceInput && referenceInput.files[0];
    if (!file) return Promise.resolve(options);
    return readAsDataUrl(file).then(function (dataUrl) {
      options.inputImages = [dataUrl];
      return options;
    });
  }

  window.SnapAssetOptions = { collect: collect };
})();
