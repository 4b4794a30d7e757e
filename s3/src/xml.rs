//! The S3 documents we parse ourselves: ListMultipartUploads' result
//! (rusty-s3 has no such action), ListParts' (moto names its root
//! `ListPartsResponse` where S3 says `ListPartsResult`, and rusty-s3 takes
//! only the latter), and error documents.

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

/// One part of an in-progress upload.
#[derive(Debug, Clone, PartialEq, Eq, FromXml)]
#[xml(rename = "Part", ns(S3_XML_NS))]
pub(crate) struct Part {
    #[xml(rename = "PartNumber")]
    pub number: u16,
    #[xml(rename = "ETag")]
    pub etag: String,
    #[xml(rename = "Size")]
    pub size: u64,
    /// ISO 8601: when the part was stored.
    #[xml(rename = "LastModified")]
    pub last_modified: Option<String>,
}

/// A ListParts page as S3 names it.
#[derive(Debug, FromXml)]
#[xml(rename = "ListPartsResult", ns(S3_XML_NS))]
struct ListPartsResult {
    parts: Vec<Part>,
    #[xml(rename = "IsTruncated")]
    is_truncated: Option<bool>,
    #[xml(rename = "NextPartNumberMarker")]
    next_part_number_marker: Option<u16>,
}

/// The same page as moto names it.
#[derive(Debug, FromXml)]
#[xml(rename = "ListPartsResponse", ns(S3_XML_NS))]
struct ListPartsResponse {
    parts: Vec<Part>,
    #[xml(rename = "IsTruncated")]
    is_truncated: Option<bool>,
    #[xml(rename = "NextPartNumberMarker")]
    next_part_number_marker: Option<u16>,
}

/// A page of ListParts: its parts, and the marker of the next page.
pub(crate) fn parse_list_parts(body: &str) -> Result<(Vec<Part>, Option<u16>), instant_xml::Error> {
    let (parts, truncated, next) = match instant_xml::from_str::<ListPartsResult>(body) {
        Ok(r) => (r.parts, r.is_truncated, r.next_part_number_marker),
        Err(_) => {
            let r: ListPartsResponse = instant_xml::from_str(body)?;
            (r.parts, r.is_truncated, r.next_part_number_marker)
        }
    };
    // Part numbers start at 1: a marker of 0 would list the same page again.
    let next = next.filter(|m| truncated == Some(true) && *m > 0);
    Ok((parts, next))
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
    fn list_parts_under_either_root() {
        for root in ["ListPartsResult", "ListPartsResponse"] {
            let body = format!(
                r#"<{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket>
<Key>k</Key><UploadId>u</UploadId><PartNumberMarker>0</PartNumberMarker>
<NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>
<Part><PartNumber>1</PartNumber><LastModified>2026-12-06T07:00:00.000Z</LastModified>
<ETag>"e1"</ETag><Size>5242880</Size></Part>
<Part><PartNumber>2</PartNumber><ETag>"e2"</ETag><Size>7</Size></Part></{root}>"#
            );
            let (parts, next) = parse_list_parts(&body).unwrap();
            assert_eq!(parts.len(), 2, "{root}");
            assert_eq!((parts[0].number, parts[0].size), (1, 5242880));
            assert_eq!(parts[1].etag, "\"e2\"");
            assert_eq!(next, Some(2));
        }
    }

    #[test]
    fn list_parts_as_moto_sends_it() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<ListPartsResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bkt1</Bucket><Key>obj</Key><UploadId>z6</UploadId><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>0</NextPartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated><Initiator><ID>75</ID><DisplayName>webfile</DisplayName></Initiator><Owner><DisplayName>webfile</DisplayName><ID>75</ID></Owner><StorageClass>STANDARD</StorageClass></ListPartsResponse>"#;
        let (parts, next) = parse_list_parts(body).unwrap();
        assert!(parts.is_empty());
        assert_eq!(next, None);
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
