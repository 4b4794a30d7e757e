//! The S3 documents rusty-s3 does not parse: ListMultipartUploads' result
//! and error documents.

use instant_xml::FromXml;

const S3_XML_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// One in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, FromXml)]
#[xml(rename = "Upload", ns(S3_XML_NS))]
pub(crate) struct Upload {
    #[xml(rename = "Key")]
    pub key: String,
    #[xml(rename = "UploadId")]
    pub upload_id: String,
    /// ISO 8601, so ordered as text.
    #[xml(rename = "Initiated")]
    pub initiated: Option<String>,
}

#[derive(Debug, FromXml)]
#[xml(rename = "ListMultipartUploadsResult", ns(S3_XML_NS))]
struct ListMultipartUploadsResult {
    uploads: Vec<Upload>,
    #[xml(rename = "IsTruncated")]
    is_truncated: Option<bool>,
    #[xml(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[xml(rename = "NextUploadIdMarker")]
    next_upload_id_marker: Option<String>,
}

/// A page of ListMultipartUploads.
#[derive(Debug)]
pub(crate) struct UploadsPage {
    pub uploads: Vec<Upload>,
    pub truncated: bool,
    /// The key and upload-id markers to ask for the next page with.
    pub next: Option<(String, String)>,
}

pub(crate) fn parse_list_uploads(body: &str) -> Result<UploadsPage, instant_xml::Error> {
    let r: ListMultipartUploadsResult = instant_xml::from_str(body)?;
    let next = match (r.next_key_marker, r.next_upload_id_marker) {
        (Some(k), Some(u)) if !k.is_empty() => Some((k, u)),
        _ => None,
    };
    Ok(UploadsPage {
        uploads: r.uploads,
        truncated: r.is_truncated.unwrap_or(false),
        next,
    })
}

/// The code and message of an S3 error document.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorDoc {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// An `<Error>` document's code and message; `None` when `body` is not
/// one. Read leniently (servers differ in namespaces and fields), and only
/// ever shown to people.
pub(crate) fn parse_error(body: &str) -> Option<ErrorDoc> {
    let start = body.find("<Error>")?;
    let doc = &body[start..];
    Some(ErrorDoc {
        code: element(doc, "Code"),
        message: element(doc, "Message"),
    })
}

fn element(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let from = doc.find(&open)? + open.len();
    let len = doc[from..].find(&close)?;
    Some(unescape(&doc[from..from + len]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_uploads_page() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>k1</Key><UploadId>u1</UploadId>
    <Initiator><ID>x</ID><DisplayName>x</DisplayName></Initiator>
    <Owner><ID>x</ID><DisplayName>x</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass><Initiated>2026-12-06T07:00:00.000Z</Initiated></Upload>
  <Upload><Key>k2</Key><UploadId>u2</UploadId><Initiated>2026-12-06T07:01:00.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page = parse_list_uploads(body).unwrap();
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[1].upload_id, "u2");
        assert!(page.truncated);
        assert_eq!(page.next, Some(("k2".into(), "u2".into())));
    }

    #[test]
    fn error_document() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchUpload</Code>\
                    <Message>gone &amp; done</Message><RequestId>1</RequestId></Error>";
        let e = parse_error(body).unwrap();
        assert_eq!(e.code.as_deref(), Some("NoSuchUpload"));
        assert_eq!(e.message.as_deref(), Some("gone & done"));
        assert_eq!(parse_error("<CompleteMultipartUploadResult/>"), None);
    }
}
