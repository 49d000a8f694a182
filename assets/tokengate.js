// tokengate's pages: copying a new token, confirming a revoke in a dialog, and keeping a shown
// secret out of the browser's history. Every page works without it, with a confirmation page
// instead of the dialog.
(() => {
  'use strict';

  // The answer to a create shows the secret. Its history entry becomes the page itself, so a
  // reload shows the page afresh rather than posting the form again.
  const canonical = document.body.dataset.canonical;
  if (canonical) {
    history.replaceState(null, '', canonical);
  }

  // A page the browser might keep for Back does not keep the secret.
  window.addEventListener('pagehide', () => {
    for (const field of document.querySelectorAll('[data-secret]')) {
      field.value = '';
    }
  });

  // Copy needs the script: without it the button stays hidden and the field is selectable.
  for (const button of document.querySelectorAll('[data-copy]')) {
    button.hidden = false;
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.status);
    button.addEventListener('click', async () => {
      let copied = false;
      try {
        await navigator.clipboard.writeText(field.value);
        copied = true;
      } catch (_) {
        field.focus();
        field.select();
        copied = document.execCommand('copy');
      }
      status.textContent = copied
        ? 'Copied to the clipboard.'
        : 'The browser did not allow copying: the token is selected, copy it with the keyboard.';
      button.textContent = copied ? 'Copied' : 'Copy';
    });
    if (canonical) {
      button.focus();
    }
  }

  const dialog = document.getElementById('tg-confirm');
  if (!dialog || typeof dialog.showModal !== 'function') {
    return;
  }
  let pending = null;
  dialog.addEventListener('close', () => {
    const form = pending;
    pending = null;
    if (!form) {
      return;
    }
    if (dialog.returnValue === 'revoke') {
      const confirmed = document.createElement('input');
      confirmed.type = 'hidden';
      confirmed.name = 'confirmed';
      confirmed.value = 'yes';
      form.append(confirmed);
      form.submit();
    } else {
      form.querySelector('button').focus();
    }
  });
  for (const form of document.querySelectorAll('form[data-confirm]')) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      pending = form;
      document.getElementById('tg-confirm-text').textContent = form.dataset.confirm;
      dialog.returnValue = '';
      dialog.showModal();
    });
  }
})();
