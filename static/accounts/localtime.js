// Times the server wrote in UTC (<time datetime="...Z" data-local>), shown in the reader's own
// time zone and format. A file, not an inline script: the Content-Security-Policy forbids those.
const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

for (const element of document.querySelectorAll("time[data-local]")) {
  const when = new Date(element.dateTime);
  if (!Number.isNaN(when.getTime())) {
    element.title = element.textContent;
    element.textContent = format.format(when);
  }
}
