// The operator's bearer token: taken from "#token=..." once, then kept in localStorage.

const STORAGE_KEY = "madina.operations.token";

export function storedToken() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token) {
  try {
    if (token) localStorage.setItem(STORAGE_KEY, token);
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Private mode without storage: the token then lives only as long as the page.
  }
}

/**
 * Take a token handed over in the URL fragment and scrub it from the address bar and history,
 * so it is not left in bookmarks, screenshots or the back button.
 */
export function takeTokenFromFragment() {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return null;
  // Split by hand: URLSearchParams would turn a base64 "+" in the token into a space.
  const parts = hash.split("&");
  const index = parts.findIndex((part) => part.startsWith("token="));
  if (index < 0) return null;
  let token;
  try {
    token = decodeURIComponent(parts[index].slice("token=".length));
  } catch {
    token = parts[index].slice("token=".length);
  }
  parts.splice(index, 1);
  const rest = parts.join("&");
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
  window.history.replaceState(window.history.state, "", url);
  return token.trim() || null;
}

/** Show the sign-in panel; resolves with the pasted token. */
export function askForToken(message) {
  const panel = document.getElementById("signin");
  const form = document.getElementById("signin-form");
  const input = document.getElementById("signin-token");
  const error = document.getElementById("signin-error");
  document.getElementById("app").hidden = true;
  panel.hidden = false;
  error.hidden = !message;
  error.textContent = message || "";
  input.value = "";
  input.focus();
  return new Promise((resolve) => {
    const onSubmit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      form.removeEventListener("submit", onSubmit);
      panel.hidden = true;
      resolve(token);
    };
    form.addEventListener("submit", onSubmit);
  });
}
